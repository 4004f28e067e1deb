"""What IAM Roles Anywhere asks of a signing certificate and its chain, as findings to report.

    >>> from hwsigner.provision.certcheck import leaf_problems, chain_path
    >>> leaf_problems(certificate)                                    # doctest: +SKIP
    []
    >>> chain_path(certificate, intermediates)                        # doctest: +SKIP
    ChainPath(links=(<Certificate(...issuing CA...)>,), unused=(), anchor=None)

The rules are the service's (its trust model documentation): the leaf "must be X.509v3", "basic
constraints must include CA: false", "the key usage must include Digital Signature", and "the
signing algorithm must include SHA256 or stronger"; every CA on the way must be a CA. Pure
functions over ``cryptography`` certificates: no clock (``now`` is passed), no files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..certrules import CURVES, MIN_RSA_BITS, STRONG_HASHES, is_ca, issued_by

REISSUE = "have the CA issue a new certificate for the same key (hwsigner csr makes the request)"


@dataclass(frozen=True, slots=True)
class Problem:
    """A broken rule and what to do about it."""

    what: str
    fix: str


@dataclass(frozen=True, slots=True)
class ChainPath:
    """The CA certificates from the leaf upwards, those that did not fit, and the anchor reached."""

    links: tuple[x509.Certificate, ...]
    unused: tuple[x509.Certificate, ...]
    anchor: x509.Certificate | None


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer and issued_by(cert, cert)


def describe(cert: x509.Certificate) -> str:
    """The subject's CN, or the whole subject when it has none."""
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not names:
        return cert.subject.rfc4514_string() or "(empty subject)"
    value = names[0].value
    return "CN=" + (value.decode(errors="replace") if isinstance(value, bytes) else value)


def signature_hash(cert: x509.Certificate) -> str | None:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    return algorithm.name if algorithm is not None else None


def leaf_problems(cert: x509.Certificate) -> list[Problem]:
    """Every Roles Anywhere rule the leaf breaks (validity is checked on its own)."""
    problems = []
    if cert.version != x509.Version.v3:
        problems.append(Problem("it is not X.509 v3", REISSUE))
    if is_ca(cert):
        problems.append(Problem("it is a CA certificate (CA:TRUE)", REISSUE + " with CA:FALSE"))
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or not usage.digital_signature:
        problems.append(
            Problem("its key usage lacks digitalSignature", REISSUE + " with digitalSignature")
        )
    hash_name = signature_hash(cert)
    if hash_name not in STRONG_HASHES:
        shown = (hash_name or "an unknown hash").upper()
        problems.append(Problem(f"the CA signed it with {shown}", REISSUE + " signed with SHA-256"))
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            problems.append(Problem(f"its RSA key has {key.key_size} bits", "use RSA-2048 or more"))
    elif not (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in CURVES):
        problems.append(Problem("its key is not RSA or EC P-256/P-384/P-521", "use such a key"))
    return problems


def days_left(cert: x509.Certificate, now: datetime) -> float:
    """Days until the certificate expires (negative once it has)."""
    return (cert.not_valid_after_utc - now).total_seconds() / 86400


def chain_path(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate] = (),
) -> ChainPath:
    """Walk from the leaf through CA certificates that really issued each step, as the service
    does: it stops at a trust anchor from ``anchors``, or where no given certificate fits."""
    links: list[x509.Certificate] = []
    unused = [cert for cert in intermediates if cert != leaf]
    current = leaf
    while True:
        anchor = next((a for a in anchors if is_ca(a) and issued_by(current, a)), None)
        if anchor is not None:
            return ChainPath(tuple(links), tuple(unused), anchor)
        issuer = next((c for c in unused if is_ca(c) and issued_by(current, c)), None)
        if issuer is None:
            return ChainPath(tuple(links), tuple(unused), None)
        links.append(issuer)
        unused.remove(issuer)
        current = issuer
