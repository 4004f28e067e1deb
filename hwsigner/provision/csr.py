"""PKCS#10 certificate requests signed by any ``KeyBackend``: in a token, a TPM or a file.

    >>> from hwsigner.keys.file import FileKey
    >>> from hwsigner.devpki import new_key
    >>> request = build_csr(FileKey(new_key("ec-p256")), parse_subject("CN=device-0001,O=Acme"),
    ...                     parse_sans(["dns:device-0001.example.com"]))
    >>> request.pem.splitlines()[0]
    b'-----BEGIN CERTIFICATE REQUEST-----'

``cryptography``'s CSR builder wants a private key object it can call, so the request is put
together here (RFC 2986) with ``asn1crypto``: the ``CertificationRequestInfo`` is encoded, the key
signs its DER (ECDSA or PKCS#1 v1.5 over SHA-256, or pure ML-DSA), and the result is checked with
``cryptography`` before anyone sees it. The request asks for what IAM Roles Anywhere needs of a
leaf: keyUsage digitalSignature and extendedKeyUsage clientAuth (a CA may override both).
``load_csr`` reads one back, for a CA's side (the development PKI's ``issue``), and accepts the
ECDSA requests that tpm2-openssl writes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from asn1crypto import algos, core, csr, keys
from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import ConfigError, KeySourceError
from ..keys import KeyBackend
from ..x509certs import is_mldsa, key_type

MLDSA_OIDS = {
    "ML-DSA-44": "2.16.840.1.101.3.4.3.17",
    "ML-DSA-65": "2.16.840.1.101.3.4.3.18",
    "ML-DSA-87": "2.16.840.1.101.3.4.3.19",
}

SAN_HINT = "write each --san as dns:NAME, uri:URI, ip:ADDRESS or email:ADDRESS"
SUBJECT_HINT = 'write it as "CN=device-0001,O=Acme" (RFC 4514) or "/O=Acme/CN=device-0001"'


@dataclass(frozen=True, slots=True)
class SigningRequest:
    """A signed PKCS#10 request."""

    der: bytes

    @property
    def pem(self) -> bytes:
        return x509.load_der_x509_csr(self.der).public_bytes(Encoding.PEM)


def parse_subject(text: str) -> x509.Name:
    """``CN=device-0001,O=Acme`` (RFC 4514, last RDN first) or OpenSSL's ``/O=Acme/CN=...``."""
    text = text.strip()
    if not text:
        raise ConfigError("the subject is empty", hint=SUBJECT_HINT)
    try:
        if text.startswith("/"):
            parts = [part for part in text[1:].split("/") if part]
            name = x509.Name.from_rfc4514_string(",".join(reversed(parts)))
        else:
            name = x509.Name.from_rfc4514_string(text)
    except ValueError as exc:
        raise ConfigError(f"cannot read the subject {text!r}: {exc}", hint=SUBJECT_HINT) from None
    if not name.get_attributes_for_oid(NameOID.COMMON_NAME):
        raise ConfigError(f"the subject {text!r} has no CN", hint=SUBJECT_HINT)
    return name


def parse_sans(values: Iterable[str]) -> tuple[x509.GeneralName, ...]:
    """``dns:``, ``uri:``, ``ip:`` and ``email:`` values as subject alternative names."""
    names: list[x509.GeneralName] = []
    for value in values:
        kind, sep, rest = value.partition(":")
        kind = kind.lower()
        if not sep or not rest:
            raise ConfigError(f"--san {value!r} has no type or no value", hint=SAN_HINT)
        if kind == "dns":
            names.append(x509.DNSName(rest))
        elif kind == "uri":
            names.append(x509.UniformResourceIdentifier(rest))
        elif kind == "email":
            names.append(x509.RFC822Name(rest))
        elif kind == "ip":
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(rest)))
            except ValueError:
                raise ConfigError(f"--san {value!r}: not an IP address", hint=SAN_HINT) from None
        else:
            raise ConfigError(f"--san {value!r}: unknown type {kind!r}", hint=SAN_HINT)
    return tuple(names)


def requested_extensions(
    sans: tuple[x509.GeneralName, ...],
) -> list[x509.Extension[x509.ExtensionType]]:
    """What a Roles Anywhere leaf needs, and the alternative names when there are any."""
    wanted: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),  # "must include CA: false"
        (x509.KeyUsage(True, False, False, False, False, False, False, False, False), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
    ]
    if sans:
        wanted.append((x509.SubjectAlternativeName(list(sans)), False))
    return [x509.Extension(value.oid, critical, value) for value, critical in wanted]


def certification_request_info(
    key: KeyBackend, subject: x509.Name, sans: tuple[x509.GeneralName, ...] = ()
) -> csr.CertificationRequestInfo:
    """RFC 2986 section 4.1: version 0, subject, subjectPKInfo, and an extensionRequest."""
    public_der = key.public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    extensions = asn1_x509.Extensions(
        [
            asn1_x509.Extension(
                {
                    "extn_id": ext.oid.dotted_string,
                    "critical": ext.critical,
                    "extn_value": core.ParsableOctetString(ext.value.public_bytes()),
                }
            )
            for ext in requested_extensions(sans)
        ]
    )
    return csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": asn1_x509.Name.load(subject.public_bytes()),
            "subject_pk_info": keys.PublicKeyInfo.load(public_der),
            "attributes": [{"type": "extension_request", "values": [extensions]}],
        }
    )


def signature_algorithm(key: KeyBackend) -> algos.SignedDigestAlgorithm:
    if is_mldsa(key.public_key):
        # RFC 9881 (ML-DSA in X.509): the OID of the parameter set, parameters absent
        oid = MLDSA_OIDS[key_type(key.public_key)]
        return algos.SignedDigestAlgorithm({"algorithm": oid})
    if isinstance(key.public_key, ec.EllipticCurvePublicKey):
        # RFC 5758 section 3.2: the parameters field MUST be absent for ECDSA
        return algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    # RFC 4055 section 5: sha256WithRSAEncryption with NULL parameters
    return algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa", "parameters": core.Null()})


def build_csr(
    key: KeyBackend, subject: x509.Name, sans: tuple[x509.GeneralName, ...] = ()
) -> SigningRequest:
    """Sign a request for ``key``'s public key with the key itself, and check the result."""
    info = certification_request_info(key, subject, sans)
    signature = key.sign(info.dump(), "SHA256")
    request = csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": signature_algorithm(key),
            "signature": signature,
        }
    )
    der = request.dump()
    if not x509.load_der_x509_csr(der).is_signature_valid:
        raise KeySourceError(
            f"the signature that {key.description} made over the request does not verify",
            hint="the key signs with another public key than it reports; check the key source",
        )
    return SigningRequest(der)


# ecdsa-with-SHA224/256/384/512 (RFC 5758 §3.2: "the encoding MUST omit the parameters field").
# tpm2-openssl writes them with a NULL parameter, which cryptography's strict parser refuses.
def _without_ecdsa_null(der: bytes) -> bytes:
    """The request with no NULL after an ecdsa-with-SHA* signature OID (tpm2-openssl writes one).

    Only the outer AlgorithmIdentifier changes; asn1crypto re-uses the other parts' original
    bytes, so the signed part and the signature stay as they are and still verify.
    """
    request = csr.CertificationRequest.load(der)
    algorithm = request["signature_algorithm"]["algorithm"].native
    if not algorithm.endswith("_ecdsa"):
        return der
    request["signature_algorithm"] = {"algorithm": algorithm}
    return bytes(request.dump())


def load_csr(data: bytes, source: str) -> x509.CertificateSigningRequest:
    """A PEM or DER certificate request whose self-signature verifies, or a ConfigError."""
    try:
        der = asn1_pem.unarmor(data)[2] if asn1_pem.detect(data) else data
        request = x509.load_der_x509_csr(_without_ecdsa_null(der))
    except (ValueError, TypeError):
        raise ConfigError(f"{source} is not a readable certificate request") from None
    if not request.is_signature_valid:
        raise ConfigError(f"the signature of the certificate request {source} does not verify")
    return request


__all__ = [
    "SigningRequest", "build_csr", "certification_request_info", "load_csr", "parse_sans",
    "parse_subject", "requested_extensions", "signature_algorithm",
]  # fmt: skip
