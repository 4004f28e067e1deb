"""Reading X.509 certificates: PEM bundles and DER files, their names, their keys' SPKI.

    >>> from hwsigner.devpki import make_ca, new_key
    >>> root = make_ca("example root", new_key("ec-p256"))
    >>> describe(root)
    'CN=example root'
    >>> parse_certificates(root.public_bytes(Encoding.PEM), "root.pem", "--certificate")[0] == root
    True
    >>> len(spki(root.public_key()))
    91

Below both ``identity`` and ``keys`` (it imports neither), so a key backend that reads a
certificate file and the identity that checks one share this code without an import loop.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import CertificateError, ConfigError


def read_bytes(path: str, what: str, flag: str) -> bytes:
    """The file's bytes; a missing or unreadable file is a ``ConfigError`` naming ``flag``."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {path}", hint=f"check the {flag} path") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what} file {path}: {exc.strerror}", hint=f"check the {flag} path"
        ) from None


def read_certificates(path: str, flag: str = "--intermediates") -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM bundle (or one DER certificate)."""
    return parse_certificates(read_bytes(path, "certificate", flag), path, flag)


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


def describe(cert: x509.Certificate) -> str:
    """The subject's CN, or the whole subject when it has none."""
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not names:
        return cert.subject.rfc4514_string() or "(empty subject)"
    value = names[0].value
    return "CN=" + (value.decode(errors="replace") if isinstance(value, bytes) else value)


__all__ = [
    "describe",
    "is_der_certificate",
    "parse_certificates",
    "read_bytes",
    "read_certificates",
    "spki",
]
