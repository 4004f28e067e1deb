"""The certificate rules of IAM Roles Anywhere: what a signing certificate and its chain must be.

    >>> anchors = TrustAnchors.load(["root-ca.pem"])                    # doctest: +SKIP
    >>> check_leaf(leaf, now)                                           # doctest: +SKIP
    >>> anchors.verify_chain(leaf, intermediates, now)                  # doctest: +SKIP
    <Certificate(subject=<Name(O=hwsigner dev,CN=hwsigner dev root CA)>, ...)>

The service's trust model, quoted by the checks below: end-entity certificates "must be X.509v3",
"basic constraints must include CA: false", "the key usage must include Digital Signature", "the
signing algorithm must include SHA256 or stronger"; CA certificates must have "CA: true" and the
key usage "Certificate Sign". A chain runs from the leaf through the sent intermediates to a
trust anchor (a root or an intermediate CA), each link checked by issuer name and signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..certrules import CURVES, MIN_RSA_BITS, STRONG_HASHES, extension, is_ca, issued_by
from ..errors import CertificateError
from ..identity import read_certificates
from .rejection import UNTRUSTED, Rejection, access_denied, untrusted

ExtensionValue = TypeVar("ExtensionValue", bound=x509.ExtensionType)


@dataclass(frozen=True, slots=True)
class TrustAnchors:
    """The CA certificates the emulator trusts, like the service's trust anchors."""

    certificates: tuple[x509.Certificate, ...]

    @classmethod
    def load(cls, paths: Sequence[str]) -> TrustAnchors:
        """Read PEM bundles or DER files; every certificate in them must be a CA."""
        found: list[x509.Certificate] = []
        for path in paths:
            for cert in read_certificates(path, "--trust-anchor"):
                if not is_ca(cert):
                    raise CertificateError(
                        f"{path}: {cert.subject.rfc4514_string()} is not a CA certificate",
                        hint="give --trust-anchor a root or intermediate CA certificate",
                    )
                found.append(cert)
        return cls(tuple(found))

    def verify_chain(
        self, leaf: x509.Certificate, sent: Sequence[x509.Certificate], now: datetime
    ) -> x509.Certificate:
        """Walk from ``leaf`` through ``sent`` to an anchor; return the anchor, else reject.

        Failures answer with the service's generic message; the reason goes aside."""
        current, unused, below = leaf, list(sent), 0  # below: CA certificates under ``current``
        while True:
            for anchor in self.certificates:
                if issued_by(current, anchor):
                    check_ca(anchor, now, "trust anchor", below)
                    return anchor
            issuer = next((cert for cert in unused if issued_by(current, cert)), None)
            if issuer is None:
                subject = current.subject.rfc4514_string()[:200]
                raise untrusted(f"no trust anchor or sent intermediate issued {subject}")
            check_ca(issuer, now, "intermediate certificate", below)
            unused.remove(issuer)
            current, below = issuer, below + 1


def key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    return extension(cert, x509.KeyUsage)


def check_leaf(cert: x509.Certificate, now: datetime) -> None:
    """The end-entity rules, then the key the signature is checked with."""
    if cert.version != x509.Version.v3:
        raise access_denied("The signing certificate must be X.509 v3")
    if extension(cert, x509.BasicConstraints) is None:  # "must include CA: false"
        raise access_denied("The signing certificate must have basicConstraints with CA:false")
    if is_ca(cert):
        raise access_denied("The signing certificate must not be a CA certificate")
    usage = key_usage(cert)
    if usage is None or not usage.digital_signature:
        raise access_denied("The signing certificate's key usage must include digitalSignature")
    check_signature_hash(cert, "signing certificate")
    check_validity(cert, now, "signing certificate")
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise access_denied(f"RSA keys must have at least {MIN_RSA_BITS} bits")
    elif not (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in CURVES):
        raise access_denied("The signing certificate's key must be RSA or EC P-256/P-384/P-521")


def check_ca(cert: x509.Certificate, now: datetime, role: str, below: int = 0) -> None:
    """A CA of the chain with ``below`` CA certificates under it (RFC 5280 pathLenConstraint)."""
    try:
        if not is_ca(cert):
            raise access_denied(f"The {role} {cert.subject.rfc4514_string()} is not a CA")
        constraints = extension(cert, x509.BasicConstraints)
        limit = constraints.path_length if constraints else None
        if limit is not None and below > limit:
            raise access_denied(
                f"The {role}'s pathLenConstraint {limit} allows fewer CAs under it than {below}"
            )
        usage = key_usage(cert)
        if usage is not None and not usage.key_cert_sign:
            raise access_denied(f"The {role}'s key usage must include keyCertSign")
        check_signature_hash(cert, role)
        check_validity(cert, now, role)
    except Rejection as rejection:
        raise untrusted(rejection.detail) from None


def check_signature_hash(cert: x509.Certificate, role: str) -> None:
    """The service: "MD5 and SHA1 signing algorithms are rejected"; so is an unknown hash."""
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algorithm = None
    if algorithm is None or algorithm.name not in STRONG_HASHES:
        name = algorithm.name.upper() if algorithm else "an unsupported algorithm"
        raise access_denied(f"The {role} is signed with {name}; SHA-256 or stronger is required")


def check_validity(cert: x509.Certificate, now: datetime, role: str) -> None:
    if now < cert.not_valid_before_utc:
        raise access_denied(f"The {role} is not yet valid")
    if now > cert.not_valid_after_utc:
        raise access_denied(f"The {role} has expired")


__all__ = ["UNTRUSTED", "TrustAnchors", "check_leaf", "issued_by"]
