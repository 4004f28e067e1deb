"""The identity a request is signed with: the leaf certificate, its chain, and its key.

    >>> from hwsigner.identity import load_identity
    >>> identity, key = load_identity(certificate="leaf.pem", private_key="leaf.key",
    ...                               intermediates="issuing-ca.pem")   # doctest: +SKIP
    >>> identity.certificate.serial_number                            # doctest: +SKIP
    4242

Where each part comes from follows AWS's helper: the certificate may carry the key (a combo PEM,
a PKCS#12 file, a ``pkcs11:`` URI); ``--private-key`` names it otherwise. The key must match the
certificate, compared by public key, before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509

from ._log import debug
from .errors import CertificateError, ConfigError
from .keys import KeyBackend, KeyOptions, PublicKey, open_key
from .sigv4x509 import CertificateHeaders, algorithm_for, x509_headers
from .x509certs import (
    is_der_certificate,
    parse_certificates,
    read_bytes,
    read_certificates,
    spki,
)
from .x509rules import chain_to_send


@dataclass(frozen=True, slots=True)
class Identity:
    """The leaf certificate and the intermediates sent with it (never the leaf itself).

    ``headers`` are its ``X-Amz-X509`` headers, encoded once: a long-running process signs with
    one identity again and again, and the encoding costs more than the rest of the signing.
    """

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    headers: CertificateHeaders = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", x509_headers(self.certificate, self.chain))

    def signer(self, key: KeyBackend) -> KeySigner:
        """This identity with the key it signs with, as ``sigv4x509.sign`` takes them."""
        return KeySigner(self, key)


@dataclass(frozen=True, slots=True)
class KeySigner:
    """A ``sigv4x509.Signer``: the leaf's serial and headers, the key's algorithm and signature."""

    identity: Identity
    key: KeyBackend
    algorithm: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithm", algorithm_for(self.key.public_key))

    @property
    def serial(self) -> int:
        return self.identity.certificate.serial_number

    @property
    def certificate_headers(self) -> CertificateHeaders:
        return self.identity.headers

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)


@dataclass(frozen=True, slots=True)
class CertificateFile:
    """What a certificate file holds: the leaf, any further certificates, and maybe the key."""

    certificate: x509.Certificate
    others: tuple[x509.Certificate, ...]
    key: KeyBackend | None


def load_identity(
    certificate: str | None,
    private_key: str | None = None,
    intermediates: str | None = None,
    options: KeyOptions | None = None,
) -> tuple[Identity, KeyBackend]:
    """Open the key, read the certificates and check that they belong together."""
    options = options or KeyOptions()
    if not certificate and not private_key:
        raise ConfigError(
            "no certificate and no private key given",
            hint="pass --certificate (a PEM/PKCS#12 file or a pkcs11: URI) and --private-key",
        )
    chain: tuple[x509.Certificate, ...] = ()
    if certificate and not certificate.startswith("pkcs11:"):
        found = read_certificate_file(certificate, options.pkcs8_password)
        if private_key:
            # a pkcs11: key uses the certificate file to pick the token key it belongs to
            key = open_key(private_key, options, certificate_ref=certificate)
        elif found.key is not None:
            key = found.key
        else:
            raise ConfigError(
                f"{certificate} holds no private key",
                hint="pass --private-key (a key file, a pkcs11: URI or a TPM key)",
            )
        leaf, chain = found.certificate, found.others
    else:
        key = open_key(private_key or certificate or "", options, certificate_ref=certificate)
        if key.certificate is None:
            key.close()
            raise ConfigError(
                "no certificate given", hint="pass --certificate (a PEM file or a pkcs11: URI)"
            )
        leaf, chain = key.certificate, key.chain
    try:
        check_key_matches(leaf, key.public_key)
        if intermediates:
            chain = read_certificates(intermediates)
        identity = Identity(leaf, chain_to_send(leaf, chain))
    except BaseException:
        key.close()
        raise
    debug(
        "key: %s; certificate serial %d; chain of %d",
        key.description,
        leaf.serial_number,
        len(identity.chain),
    )
    return identity, key


def check_key_matches(certificate: x509.Certificate, public_key: PublicKey) -> None:
    if spki(certificate.public_key()) != spki(public_key):
        raise CertificateError(
            "the private key does not match the certificate",
            hint="use the key the certificate was issued for (compare their public keys)",
        )


def read_certificate_file(path: str, password: str | None = None) -> CertificateFile:
    """A PEM/DER certificate, a combo PEM with its key, or a PKCS#12 file."""
    from .keys.file import FileKey, load_pkcs12

    data = read_bytes(path, "certificate", "--certificate")
    if b"-----BEGIN" not in data and not is_der_certificate(data):
        found = load_pkcs12(data, path, password)
        return CertificateFile(found.certificate, found.others, found.key)
    certs = parse_certificates(data, path, "--certificate")
    key = None
    if b"PRIVATE KEY-----" in data and b"TSS2 PRIVATE KEY" not in data:
        key = FileKey.from_pem(data, source=path, password=password)
    return CertificateFile(certs[0], certs[1:], key)


__all__ = [
    "CertificateFile",
    "Identity",
    "KeySigner",
    "check_key_matches",
    "load_identity",
    "read_certificate_file",
]
