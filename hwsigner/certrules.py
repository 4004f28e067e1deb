"""Facts about certificates that the signer, the emulator and ``doctor`` all rely on.

    >>> from hwsigner.certrules import issued_by, is_ca
    >>> issued_by(leaf, issuing_ca) and is_ca(issuing_ca)             # doctest: +SKIP
    True

IAM Roles Anywhere accepts RSA keys of 2048 bits or more and EC keys on P-256, P-384 and
P-521, and certificates "signed with SHA256 or stronger".
"""

from __future__ import annotations

from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

STRONG_HASHES = frozenset({"sha256", "sha384", "sha512", "sha3-256", "sha3-384", "sha3-512"})
CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
MIN_RSA_BITS = 2048

ExtensionValue = TypeVar("ExtensionValue", bound=x509.ExtensionType)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """The issuer's subject is the certificate's issuer and the issuer's key signed it."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def is_ca(cert: x509.Certificate) -> bool:
    constraints = extension(cert, x509.BasicConstraints)
    return constraints is not None and constraints.ca


def extension(cert: x509.Certificate, kind: type[ExtensionValue]) -> ExtensionValue | None:
    """The extension's value; None when absent or unreadable (so the rule needing it fails)."""
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        return None
