"""X.509 certificates as they are: read from PEM bundles and DER files, named, and the facts
the rules are made of (CA or not, who issued it, which hash signed it, its key's SPKI).

    >>> from hwsigner.devpki import make_ca, new_key
    >>> root = make_ca("example root", new_key("ec-p256"))
    >>> describe(root), is_ca(root), is_self_signed(root), signature_hash(root)
    ('CN=example root', True, True, 'sha256')
    >>> parse_certificates(root.public_bytes(Encoding.PEM), "root.pem", "--certificate")[0] == root
    True
    >>> len(spki(root.public_key()))
    91

What the service asks of a certificate is ``hwsigner.x509rules``. This module sits below both
``identity`` and ``keys`` (it imports neither), so a key backend that reads a certificate file
and the identity that checks one share it without an import loop.
"""

from __future__ import annotations

from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ._safe import read_user_file
from .errors import CertificateError

ExtensionValue = TypeVar("ExtensionValue", bound=x509.ExtensionType)

# FIPS 204 ML-DSA: the parameter set of each public key type, as AWS's helper names it.
MLDSA_KEYS: dict[type, str] = {
    mldsa.MLDSA44PublicKey: "ML-DSA-44",
    mldsa.MLDSA65PublicKey: "ML-DSA-65",
    mldsa.MLDSA87PublicKey: "ML-DSA-87",
}
MLDSA_SIGNATURES = frozenset(
    {
        x509.SignatureAlgorithmOID.ML_DSA_44,
        x509.SignatureAlgorithmOID.ML_DSA_65,
        x509.SignatureAlgorithmOID.ML_DSA_87,
    }
)


def read_certificates(path: str, flag: str = "--intermediates") -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM bundle (or one DER certificate)."""
    return parse_certificates(read_user_file(path, "certificate", flag), path, flag)


def parse_certificates(data: bytes, source: str, flag: str) -> tuple[x509.Certificate, ...]:
    """The certificates of PEM text, or the one certificate of DER bytes."""
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return tuple(x509.load_pem_x509_certificates(data))
        return (x509.load_der_x509_certificate(data),)
    except ValueError:
        raise CertificateError(
            f"{source} holds no readable X.509 certificate",
            hint=f"give {flag} a PEM or DER certificate file",
        ) from None


def is_der_certificate(data: bytes) -> bool:
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        return False
    return True


def spki(public_key: object) -> bytes:
    """The DER SubjectPublicKeyInfo: how two public keys are compared."""
    return public_key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )


def key_type(public_key: object) -> str:
    """``RSA``, ``EC`` or ``ML-DSA-44/65/87`` (else the class name): the ``keyType`` of
    ``read-certificate-data`` and the word errors use."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "EC"
    for kind, name in MLDSA_KEYS.items():
        if isinstance(public_key, kind):
            return name
    return type(public_key).__name__.lstrip("_")


def is_mldsa(public_key: object) -> bool:
    return isinstance(public_key, tuple(MLDSA_KEYS))


def describe(cert: x509.Certificate) -> str:
    """The subject's CN, or the whole subject when it has none."""
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not names:
        return cert.subject.rfc4514_string() or "(empty subject)"
    value = names[0].value
    return "CN=" + (value.decode(errors="replace") if isinstance(value, bytes) else value)


def extension(cert: x509.Certificate, kind: type[ExtensionValue]) -> ExtensionValue | None:
    """The extension's value; None when absent or unreadable (so the rule needing it fails)."""
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        return None


def is_ca(cert: x509.Certificate) -> bool:
    constraints = extension(cert, x509.BasicConstraints)
    return constraints is not None and constraints.ca


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """The issuer's subject is the certificate's issuer and the issuer's key signed it."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer and issued_by(cert, cert)


def signature_hash(cert: x509.Certificate) -> str | None:
    """The hash of the certificate's signature; ``ml-dsa`` for ML-DSA, which hashes inside
    (FIPS 204: SHAKE256 over the message, no separate digest)."""
    if cert.signature_algorithm_oid in MLDSA_SIGNATURES:
        return "ml-dsa"
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    return algorithm.name if algorithm is not None else None


def public_key_or_none(cert: x509.Certificate) -> object:
    """The certificate's public key; None when ``cryptography`` cannot read it."""
    try:
        return cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None


__all__ = [
    "MLDSA_KEYS",
    "MLDSA_SIGNATURES",
    "describe",
    "extension",
    "is_ca",
    "is_der_certificate",
    "is_mldsa",
    "is_self_signed",
    "issued_by",
    "key_type",
    "parse_certificates",
    "public_key_or_none",
    "read_certificates",
    "signature_hash",
    "spki",
]
