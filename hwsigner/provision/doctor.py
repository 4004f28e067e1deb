"""``doctor``: everything ``credential-process`` needs, checked one step at a time.

    >>> import tempfile
    >>> from datetime import datetime, timezone
    >>> from hwsigner.devpki import DevPki
    >>> from hwsigner.provision.doctor import Setup, run_checks
    >>> pki = DevPki.create(tempfile.mkdtemp())
    >>> cert, key = pki.new_leaf("ec-p256", "device")
    >>> setup = Setup(certificate=str(cert), private_key=str(key),
    ...               intermediates=str(pki.issuing_cert), trust_anchors=str(pki.root_cert))
    >>> for check in run_checks(setup, datetime.now(timezone.utc)):
    ...     print(check.status.upper(), check.name)      # check.line(): the detail and fix
    PASS certificate
    PASS private key
    PASS key matches certificate
    PASS validity
    PASS Roles Anywhere rules
    PASS chain
    SKIP ARNs
    SKIP endpoint

Each check yields one ``Check``: pass, warn (fine for now), fail (with a fix) or skip (it could
not run because an earlier step failed, or was not asked for). The key is opened once and used
for a test signature, the certificate is held to the service's rules and its chain walked, the
ARNs parsed; the service part is in ``doctor_service``. A setup is good when nothing fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ..errors import CertificateError, HwSignerError
from ..identity import read_certificate_file
from ..keys import KeyBackend, open_key
from ..sigv4x509 import MAX_CHAIN
from ..x509certs import describe, is_self_signed, read_certificates, signature_hash, spki
from ..x509rules import (
    LEAF_RULES,
    NOT_EXPIRED,
    UNTRUSTED,
    VALID_YET,
    VALIDITY_RULES,
    broken_rules,
    chain_broken,
    walk_chain,
)
from .doctor_service import Check, Opened, Setup, failed, failing, service_checks

WARN_DAYS = 30
TEST_MESSAGE = b"hwsigner doctor: a test signature"
SHAPE_RULES = tuple(rule for rule in LEAF_RULES if rule not in VALIDITY_RULES)  # validity: its own


def run_checks(
    setup: Setup,
    now: datetime,
    *,
    transport: Callable[..., object] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Check]:
    """Every check in order; the key is closed when the iteration ends."""
    opened: Opened | None = None
    try:
        for check, found in open_identity(setup):
            opened = found or opened
            yield check
        if opened is None:
            yield from (Check(name, "skip", "needs the certificate and the key") for name in (
                "key matches certificate", "validity", "Roles Anywhere rules", "chain",
            ))  # fmt: skip
        else:
            yield check_pair(opened)
            yield check_validity(opened.certificate, now)
            yield check_rules(opened.certificate, now)
            yield check_chain(opened, setup.trust_anchors, now)
        yield from service_checks(setup, opened, transport=transport, env=env)
    finally:
        if opened is not None:
            opened.key.close()


def open_identity(setup: Setup) -> Iterator[tuple[Check, Opened | None]]:
    """The certificate and the key, each on its own line (one for a ``pkcs11:`` certificate,
    which the token gives together with the key)."""
    certificate = setup.certificate
    if not certificate:
        yield Check("certificate", "fail", "no certificate given", "pass --certificate"), None
        return
    if certificate.startswith("pkcs11:"):
        try:
            key = open_key(setup.private_key or certificate, setup.options,
                           certificate_ref=certificate)  # fmt: skip
        except CertificateError as exc:
            yield failed("certificate", exc), None
            return
        except HwSignerError as exc:
            yield failed("private key", exc), None
            return
        assert key.certificate is not None
        yield Check("certificate", "pass", f"{summary(key.certificate)}, on the token"), None
        yield from with_key(setup, key, key.certificate, key.chain)
        return
    try:
        found = read_certificate_file(certificate, setup.options.pkcs8_password)
    except HwSignerError as exc:
        yield failed("certificate", exc), None
        return
    yield Check("certificate", "pass", f"{summary(found.certificate)}, from {certificate}"), None
    if setup.private_key:
        try:
            key = open_key(setup.private_key, setup.options)
        except HwSignerError as exc:
            yield failed("private key", exc), None
            return
    elif found.key is not None:
        key = found.key
    else:
        fix = "pass --private-key (a key file, a TSS2 key file, handle:0x81... or a pkcs11: URI)"
        yield Check("private key", "fail", f"{certificate} holds no private key", fix), None
        return
    yield from with_key(setup, key, found.certificate, found.others)


def with_key(
    setup: Setup, key: KeyBackend, leaf: x509.Certificate, chain: tuple[x509.Certificate, ...]
) -> Iterator[tuple[Check, Opened | None]]:
    if setup.intermediates:
        try:
            chain = read_certificates(setup.intermediates)
        except HwSignerError as exc:
            key.close()
            yield failed("intermediates", exc), None
            return
    yield Check("private key", "pass", f"opens: {key.description}"), Opened(leaf, chain, key)


def summary(cert: x509.Certificate) -> str:
    return (
        f"{describe(cert)}, serial {cert.serial_number:X}, issued by {cert.issuer.rfc4514_string()}"
    )


def check_pair(opened: Opened) -> Check:
    """The same public key, and a test signature by the key that the certificate verifies."""
    name = "key matches certificate"
    public = opened.certificate.public_key()
    if spki(opened.key.public_key) != spki(public):
        return Check(
            name, "fail", "the key's public key is not the certificate's",
            "use the certificate issued for this key, or the key it was issued for",
        )  # fmt: skip
    try:
        signature = opened.key.sign(TEST_MESSAGE)
    except HwSignerError as exc:
        return Check(name, "fail", f"the key cannot sign: {exc}", exc.hint)
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, TEST_MESSAGE, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, TEST_MESSAGE, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return Check(
            name, "fail", "a test signature by the key does not verify with the certificate",
            "check the key source: it signs with another key than it reports",
        )  # fmt: skip
    return Check(name, "pass", "same public key; a test signature verifies")


def check_validity(cert: x509.Certificate, now: datetime) -> Check:
    name = "validity"
    until = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
    left = (cert.not_valid_after_utc - now).total_seconds() / 86400
    if now < cert.not_valid_before_utc:
        start = cert.not_valid_before_utc.strftime("%Y-%m-%d %H:%M UTC")
        return Check(name, "fail", f"the certificate is not valid before {start}", VALID_YET.fix)
    renew = NOT_EXPIRED.fix
    if left < 0:
        return Check(
            name, "fail", f"the certificate expired on {until} ({-left:.0f} days ago)", renew
        )
    if left < WARN_DAYS:
        return Check(name, "warn", f"the certificate expires in {left:.1f} days ({until})", renew)
    return Check(name, "pass", f"valid until {until} ({left:.0f} days left)")


def check_rules(cert: x509.Certificate, now: datetime) -> Check:
    """X.509 v3, not a CA, digitalSignature, SHA-256 or stronger, an accepted key: every broken
    rule with the service's message and its fix."""
    name = "Roles Anywhere rules"
    problems = broken_rules(cert, now, SHAPE_RULES)
    if problems:
        return failing(name, [(broken.message, broken.fix) for broken in problems])
    shown = (signature_hash(cert) or "?").upper()
    return Check(name, "pass", f"X.509 v3, not a CA, digitalSignature, signed with {shown}")


def check_chain(opened: Opened, trust_anchors: str | None, now: datetime) -> Check:
    name = "chain"
    try:
        anchors = read_certificates(trust_anchors, "--trust-anchor-cert") if trust_anchors else ()
    except HwSignerError as exc:
        return failed(name, exc)
    leaf, chain = opened.certificate, opened.chain
    path = walk_chain(leaf, chain, anchors)
    shown = " <- ".join(describe(cert) for cert in (leaf, *path.links))
    if len(chain) > MAX_CHAIN:
        fix = "send only the intermediates between the certificate and the trust anchor"
        return Check(
            name, "fail", f"{len(chain)} intermediates; the service takes {MAX_CHAIN}", fix
        )
    if path.unused:
        return Check(
            name, "fail", f"{describe(path.unused[0])} is not on the path {shown}",
            "remove it from the intermediates, or add the CA between",
        )  # fmt: skip
    problems = [
        (f"{shown} does not reach the trust anchor", broken.fix)
        if broken.rule is UNTRUSTED
        else (broken.message, broken.fix)
        for broken in chain_broken(path, now)
        if anchors or broken.rule is not UNTRUSTED  # with no anchor given, the top is unknown
    ]
    if problems:
        return failing(name, problems)
    if path.anchor is not None:
        return Check(name, "pass", f"{shown} <- trust anchor {describe(path.anchor)}")
    if is_self_signed(leaf):
        return Check(name, "fail", "the certificate is self-signed",
                     "Roles Anywhere needs a certificate issued by a CA")  # fmt: skip
    top = path.links[-1] if path.links else None
    if top is not None and is_self_signed(top):
        return Check(name, "pass", f"{shown} (reaches the root CA)")
    issuer = top.issuer.rfc4514_string() if top is not None else leaf.issuer.rfc4514_string()
    return Check(
        name, "warn", f"{shown}; the trust anchor must be {issuer} (not checked)",
        "pass --trust-anchor-cert with the trust anchor's CA certificate to check it",
    )  # fmt: skip


__all__ = ["Check", "Setup", "check_chain", "check_pair", "check_rules", "check_validity",
           "run_checks"]  # fmt: skip
