"""The certificate rules of IAM Roles Anywhere, written once: each rule, the service's message
when a certificate breaks it, and the fix; and the one walk from a leaf to its trust anchor.

    >>> from datetime import datetime, timezone
    >>> from hwsigner.devpki import make_ca, new_key
    >>> root = make_ca("example root", new_key("ec-p256"))
    >>> for broken in broken_rules(root, datetime.now(timezone.utc)):
    ...     print(broken.message)
    The signing certificate must not be a CA certificate
    The signing certificate's key usage must include digitalSignature
    >>> broken_rules(root, datetime.now(timezone.utc), CA_RULES, "trust anchor")
    []

The emulator refuses with the first broken rule's message, ``doctor`` lists every broken rule
with its fix. The service's trust model, quoted: end-entity certificates "must be X.509v3",
"basic constraints must include CA: false", "the key usage must include Digital Signature", "the
signing algorithm must include SHA256 or stronger"; CA certificates must have "CA: true" and the
key usage "Certificate Sign"; keys are RSA of 2048 bits or more, EC on P-256, P-384, P-521, or
ML-DSA (since 2026-02). A chain runs from the leaf through the sent intermediates to a trust
anchor (a root or an intermediate CA), each link found by issuer name and signature.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .errors import ConfigError
from .sigv4x509 import MAX_CHAIN
from .x509certs import extension, is_ca, is_mldsa, issued_by, public_key_or_none, signature_hash

STRONG_HASHES = frozenset({"sha256", "sha384", "sha512", "sha3-256", "sha3-384", "sha3-512"})
STRONG_HASHES |= {"ml-dsa"}  # x509certs.signature_hash of an ML-DSA signature (FIPS 204)
CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
MIN_RSA_BITS = 2048
LEAF = "signing certificate"
INTERMEDIATE = "intermediate certificate"
ANCHOR = "trust anchor"
REISSUE = "have the CA issue a new certificate for the same key (hwsigner csr makes the request)"
RENEW = "renew it: hwsigner csr, have the CA issue it, then hwsigner import-cert --replace"

Finding = Callable[[x509.Certificate, datetime], str | None]


@dataclass(frozen=True, slots=True)
class Rule:
    """What the service asks of a certificate. ``finds`` says what breaks it (None: nothing);
    ``message`` is the service's refusal, with ``{role}`` and ``{found}`` filled in."""

    name: str
    message: str
    fix: str
    finds: Finding | None = None  # None: a rule of the chain, checked by the walk


@dataclass(frozen=True, slots=True)
class Broken:
    """A rule a certificate (in a ``role``: signing certificate, intermediate, anchor) breaks."""

    rule: Rule
    role: str
    found: str = ""

    @property
    def message(self) -> str:
        return self.rule.message.format(role=self.role, found=self.found)

    @property
    def fix(self) -> str:
        return self.rule.fix


# --- what breaks each rule: None when the certificate keeps it, else what goes into the message


def _not_v3(cert: x509.Certificate, now: datetime) -> str | None:
    return None if cert.version == x509.Version.v3 else cert.version.name


def _a_ca(cert: x509.Certificate, now: datetime) -> str | None:
    if extension(cert, x509.BasicConstraints) is None:  # "must include CA: false"
        return "must have basicConstraints with CA:false"
    return "must not be a CA certificate" if is_ca(cert) else None


def _not_a_ca(cert: x509.Certificate, now: datetime) -> str | None:
    return None if is_ca(cert) else cert.subject.rfc4514_string()


def _no_digital_signature(cert: x509.Certificate, now: datetime) -> str | None:
    usage = extension(cert, x509.KeyUsage)
    return None if usage is not None and usage.digital_signature else "no digitalSignature"


def _no_cert_sign(cert: x509.Certificate, now: datetime) -> str | None:
    usage = extension(cert, x509.KeyUsage)  # a CA without key usage may sign certificates
    return None if usage is None or usage.key_cert_sign else "no keyCertSign"


def _weak_hash(cert: x509.Certificate, now: datetime) -> str | None:
    name = signature_hash(cert)
    if name in STRONG_HASHES:
        return None
    return name.upper() if name else "an unsupported algorithm"


def _not_yet_valid(cert: x509.Certificate, now: datetime) -> str | None:
    return str(cert.not_valid_before_utc) if now < cert.not_valid_before_utc else None


def _expired(cert: x509.Certificate, now: datetime) -> str | None:
    return str(cert.not_valid_after_utc) if now > cert.not_valid_after_utc else None


def _small_rsa(cert: x509.Certificate, now: datetime) -> str | None:
    key = public_key_or_none(cert)
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return str(key.key_size)
    return None


def _other_key(cert: x509.Certificate, now: datetime) -> str | None:
    key = public_key_or_none(cert)
    if key is None:
        return "an unreadable key"
    if isinstance(key, rsa.RSAPublicKey):
        return None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return None if key.curve.name in CURVES else key.curve.name
    return None if is_mldsa(key) else type(key).__name__.lstrip("_")


# --- the rules

V3 = Rule("X.509 v3", "The signing certificate must be X.509 v3", REISSUE, _not_v3)
NOT_CA = Rule(
    "not a CA", "The signing certificate {found}",
    REISSUE + " with CA:FALSE", _a_ca,
)  # fmt: skip
DIGITAL_SIGNATURE = Rule(
    "digitalSignature", "The signing certificate's key usage must include digitalSignature",
    REISSUE + " with digitalSignature", _no_digital_signature,
)  # fmt: skip
STRONG_HASH = Rule(
    "signed with SHA-256 or stronger",
    "The {role} is signed with {found}; SHA-256 or stronger is required",
    REISSUE + " signed with SHA-256", _weak_hash,
)  # fmt: skip
VALID_YET = Rule(
    "valid yet", "The {role} is not yet valid", "wait, or check this machine's clock",
    _not_yet_valid,
)  # fmt: skip
NOT_EXPIRED = Rule("not expired", "The {role} has expired", RENEW, _expired)
RSA_SIZE = Rule(
    f"RSA of {MIN_RSA_BITS} bits or more", f"RSA keys must have at least {MIN_RSA_BITS} bits",
    "make an RSA-2048 (or larger) or EC key (hwsigner keygen) and have it certified", _small_rsa,
)  # fmt: skip
KEY_TYPE = Rule(
    "RSA, EC P-256/P-384/P-521 or ML-DSA",
    "The signing certificate's key must be RSA, EC P-256/P-384/P-521 or ML-DSA",
    "make an RSA, EC or ML-DSA key (hwsigner keygen) and have it certified", _other_key,
)  # fmt: skip

LEAF_RULES = (
    V3, NOT_CA, DIGITAL_SIGNATURE, STRONG_HASH, VALID_YET, NOT_EXPIRED, RSA_SIZE, KEY_TYPE,
)  # fmt: skip
VALIDITY_RULES = (VALID_YET, NOT_EXPIRED)

IS_CA = Rule(
    "a CA", "The {role} {found} is not a CA",
    "send the CA certificates between the leaf and the trust anchor, nothing else", _not_a_ca,
)  # fmt: skip
CERT_SIGN = Rule(
    "keyCertSign", "The {role}'s key usage must include keyCertSign",
    "use a CA certificate whose key usage includes keyCertSign", _no_cert_sign,
)  # fmt: skip
CA_RULES = (
    IS_CA, CERT_SIGN,
    replace(STRONG_HASH, fix="have the CA certificate re-issued, signed with SHA-256"),
    VALID_YET,
    replace(NOT_EXPIRED, fix="renew the CA certificate and send the new one"),
)  # fmt: skip

# The chain's own rules, checked by the walk.
UNTRUSTED = Rule(
    "reaches a trust anchor", "Untrusted signing certificate",
    "pass --intermediates with the CA certificates between it and the trust anchor",
)  # fmt: skip
PATH_LENGTH = Rule(
    "path length", "The {role}'s path length constraint allows {found} CA certificates below it",
    "send a chain the CA certificates' pathLenConstraint allows",
)  # fmt: skip


def broken_rules(
    cert: x509.Certificate,
    now: datetime,
    rules: Sequence[Rule] = LEAF_RULES,
    role: str = LEAF,
) -> list[Broken]:
    """Every rule of ``rules`` that ``cert`` breaks, in the table's order."""
    found = ((rule, rule.finds(cert, now)) for rule in rules if rule.finds is not None)
    return [Broken(rule, role, what) for rule, what in found if what is not None]


@dataclass(frozen=True, slots=True)
class ChainPath:
    """The CA certificates from the leaf upwards, those that did not fit, and the anchor reached."""

    links: tuple[x509.Certificate, ...]
    unused: tuple[x509.Certificate, ...]
    anchor: x509.Certificate | None


def walk_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate] = (),
) -> ChainPath:
    """From the leaf through the certificates that issued each step (by issuer name and
    signature), as the service does: it stops at one of ``anchors``, or where nothing fits."""
    links: list[x509.Certificate] = []
    unused = [cert for cert in intermediates if cert != leaf]
    current = leaf
    while True:
        anchor = next((a for a in anchors if issued_by(current, a)), None)
        if anchor is not None:
            return ChainPath(tuple(links), tuple(unused), anchor)
        issuer = next((cert for cert in unused if issued_by(current, cert)), None)
        if issuer is None:
            return ChainPath(tuple(links), tuple(unused), None)
        links.append(issuer)
        unused.remove(issuer)
        current = issuer


def chain_broken(path: ChainPath, now: datetime) -> Iterator[Broken]:
    """The broken rules of a walked chain, in the order the service meets them: each link's CA
    rules, then "untrusted" when no anchor was reached, then the anchor's."""
    for depth, cert in enumerate(path.links):
        yield from broken_rules(cert, now, CA_RULES, INTERMEDIATE)
        yield from _path_length(cert, path.links[:depth], INTERMEDIATE)
    if path.anchor is None:
        yield Broken(UNTRUSTED, LEAF)
        return
    yield from broken_rules(path.anchor, now, CA_RULES, ANCHOR)
    yield from _path_length(path.anchor, path.links, ANCHOR)


def _path_length(
    ca: x509.Certificate, below: Sequence[x509.Certificate], role: str
) -> list[Broken]:
    """RFC 5280 4.2.1.9: pathLenConstraint is "the maximum number of non-self-issued
    intermediate certificates that may follow this certificate in a valid certification path"."""
    constraints = extension(ca, x509.BasicConstraints)
    limit = constraints.path_length if constraints is not None else None
    count = sum(1 for cert in below if cert.subject != cert.issuer)
    if limit is None or count <= limit:
        return []
    return [Broken(PATH_LENGTH, role, str(limit))]


def chain_to_send(
    leaf: x509.Certificate, chain: Sequence[x509.Certificate]
) -> tuple[x509.Certificate, ...]:
    """Drop the leaf and repeats from the chain, and hold it to the service's limit of five."""
    kept: list[x509.Certificate] = []
    for cert in chain:
        if cert != leaf and cert not in kept:
            kept.append(cert)
    if len(kept) > MAX_CHAIN:
        raise ConfigError(
            f"the chain has {len(kept)} certificates; Roles Anywhere accepts at most {MAX_CHAIN}",
            hint="pass only the intermediates between the leaf and the trust anchor",
        )
    return tuple(kept)


__all__ = [
    "CA_RULES",
    "CURVES",
    "LEAF_RULES",
    "MIN_RSA_BITS",
    "NOT_EXPIRED",
    "STRONG_HASHES",
    "UNTRUSTED",
    "VALIDITY_RULES",
    "VALID_YET",
    "Broken",
    "ChainPath",
    "Rule",
    "broken_rules",
    "chain_broken",
    "chain_to_send",
    "walk_chain",
]
