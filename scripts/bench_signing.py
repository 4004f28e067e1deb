"""Signing in a long-running process, and the hardware operations each CreateSession costs.

    >>> signing(lab, report, rounds=100)        # hwsigner's SigV4-X509 signing vs the bare library
    >>> hardware_ops(lab, report, sessions=20)  # logins, signatures, primaries per CreateSession

"hwsigner" is ``sigv4x509.sign(request, identity.signer(key), region, now)``: the headers, the
canonical request, the string to sign and the key's signature, as every CreateSession does it.
"bare" is the one library call that makes a signature over the same string with the same key:
``cryptography``'s ``sign`` for a file key, python-pkcs11's ``sign`` (of a SHA-256 digest, with
``CKM_ECDSA``) for a SoftHSM key, ESAPI's ``sign`` (of a SHA-256 digest) for a swtpm key.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench_lab import Lab, TokenKey
from bench_report import Report, interleaved, micros, millis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from lab import PROFILE_ARN, ROLE_ARN, TRUST_ANCHOR_ARN

from hwsigner.identity import Identity, load_identity
from hwsigner.keys import Digest, KeyBackend, KeyOptions, PublicKey
from hwsigner.rolesanywhere import request_credentials, resolve
from hwsigner.settings import Settings
from hwsigner.sigv4x509 import Request, sign

# ratio budgets of hwsigner's signing over the bare library operation
BUDGETS = {"file": 1.5, "file-rsa": 1.5, "softhsm": 1.10, "swtpm": 1.10}
# calls per timed batch: enough to dwarf the timer for the fast keys
BATCHES = {"file": 50, "file-rsa": 5, "softhsm": 20, "swtpm": 4}


@dataclass
class Opened:
    """A key opened the way hwsigner opens it, and the bare library call on the same key."""

    identity: Identity
    key: KeyBackend
    bare: Callable[[bytes], object]


def params(lab: Lab) -> Settings:
    return Settings(
        trust_anchor_arn=TRUST_ANCHOR_ARN,
        profile_arn=PROFILE_ARN,
        role_arn=ROLE_ARN,
        endpoint=lab.emulator.url,
    )


def options(lab: Lab, kind: str) -> KeyOptions:
    if kind == "softhsm" and lab.softhsm is not None:
        return KeyOptions(pkcs11_lib=lab.softhsm.module)
    if kind == "swtpm" and lab.swtpm is not None:
        return KeyOptions(tpm_tcti=lab.swtpm.tcti, no_tpm_key_password=True)
    return KeyOptions()


def open_identity(lab: Lab, kind: str) -> tuple[Identity, KeyBackend]:
    flags = lab.flags(kind)
    cert = flags[flags.index("--certificate") + 1]
    key = flags[flags.index("--private-key") + 1] if "--private-key" in flags else None
    return load_identity(cert, key, str(lab.pki.issuing_cert), options(lab, kind))


def file_bare(path: Path) -> Callable[[bytes], object]:
    private = serialization.load_pem_private_key(path.read_bytes(), None)
    if isinstance(private, rsa.RSAPrivateKey):
        rsa_key = private
        return lambda message: rsa_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    ec_key = private
    return lambda message: ec_key.sign(message, ec.ECDSA(hashes.SHA256()))


@contextmanager
def softhsm_bare(token: TokenKey) -> Iterator[Callable[[bytes], object]]:
    """python-pkcs11 on the same token; its session shares hwsigner's login (one per process)."""
    import pkcs11
    from pkcs11 import Mechanism, ObjectClass

    session = pkcs11.lib(token.module).get_token(token_label=token.label).open()
    try:
        private: Any = session.get_key(ObjectClass.PRIVATE_KEY, label="ra")
        yield lambda message: private.sign(
            hashlib.sha256(message).digest(), mechanism=Mechanism.ECDSA
        )
    finally:
        session.close()


def tpm_bare(key: Any) -> Callable[[bytes], object]:
    """ESAPI on the key hwsigner loaded (swtpm takes one connection at a time)."""
    from tpm2_pytss.constants import TPM2_ALG
    from tpm2_pytss.types import TPMS_SCHEME_HASH, TPMT_SIG_SCHEME, TPMU_SIG_SCHEME

    esapi, obj = key.device.esapi, key._loaded.obj  # the same loaded key; a private attribute
    scheme = TPMT_SIG_SCHEME(
        scheme=TPM2_ALG.ECDSA,
        details=TPMU_SIG_SCHEME(ecdsa=TPMS_SCHEME_HASH(hashAlg=TPM2_ALG.SHA256)),
    )
    return lambda message: esapi.sign(obj, hashlib.sha256(message).digest(), scheme)


@contextmanager
def opened(lab: Lab, kind: str) -> Iterator[Opened]:
    """The key of ``kind`` opened by hwsigner, and the bare library call on the same key."""
    if kind == "file-rsa":
        cert, key_file = lab.pki.new_leaf("rsa-2048", "file-rsa")
        identity, key = load_identity(str(cert), str(key_file), str(lab.pki.issuing_cert))
    else:
        identity, key, key_file = *open_identity(lab, kind), lab.file_key
    with key:
        if kind == "softhsm" and lab.softhsm is not None:
            with softhsm_bare(lab.softhsm) as bare:
                yield Opened(identity, key, bare)
        elif kind == "swtpm":
            yield Opened(identity, key, tpm_bare(key))
        else:
            yield Opened(identity, key, file_bare(key_file))


def signing(lab: Lab, report: Report, rounds: int) -> None:
    report.section(
        "signing in a long-running process",
        f"median per signature, {rounds} rounds in turns; hwsigner = SigV4-X509 request signing",
    )
    target = resolve(params(lab))
    request = Request("POST", target.url, (("Content-Type", "application/json"),), target.body)
    cases = [("file", "file key, EC P-256"), ("file-rsa", "file key, RSA-2048")]
    cases += [(k, f"{k} key, EC P-256") for k in lab.kinds() if k != "file"]
    for kind, title in cases:
        with opened(lab, kind) as key:
            _compare(report, title, kind, request, key, rounds)


def _compare(
    report: Report, title: str, kind: str, request: Request, opened: Opened, rounds: int
) -> None:
    identity, key, bare = opened.identity, opened.key, opened.bare
    region = "us-east-1"
    signer, bare_signer = identity.signer(key), identity.signer(NoKey(key.public_key))
    message = sign(request, signer, region, datetime.now(timezone.utc)).string_to_sign
    data = message.encode()

    def sigv4_then_bare() -> None:  # what a backend with no cost of its own would take
        sign(request, bare_signer, region, datetime.now(timezone.utc))
        bare(data)

    medians = interleaved(
        [
            ("hwsigner", lambda: sign(request, signer, region, datetime.now(timezone.utc))),
            ("bare", lambda: bare(data)),
            ("sigv4", sigv4_then_bare),
        ],
        rounds,
        BATCHES[kind],
    )
    base = medians["bare"]
    report.row(f"{title}: bare library sign", micros(base))
    report.row(
        f"{title}: hwsigner SigV4-X509 sign",
        micros(medians["hwsigner"]),
        ratio=medians["hwsigner"] / base,
        budget=BUDGETS[kind],
    )
    report.row("  of which SigV4 (no-op key, then bare sign)", "", ratio=medians["sigv4"] / base)
    report.note(f"  hwsigner's own work: {micros(medians['hwsigner'] - base)}")


class NoKey(KeyBackend):
    """A key that signs in no time: hwsigner's request signing, less the backend."""

    def __init__(self, public_key: PublicKey) -> None:
        self._public_key = public_key

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    def sign(self, message: bytes, digest: Digest = "SHA256") -> bytes:
        return b"\x30\x06\x02\x01\x01\x02\x01\x01"  # DER of r = s = 1


def hardware_ops(lab: Lab, report: Report, sessions: int) -> None:
    report.section(
        "hardware operations per CreateSession",
        f"one process opens the key, then {sessions} CreateSessions on the emulator",
    )
    for kind in lab.kinds():
        before_pkcs11 = _pkcs11_counters()
        before_service = lab.create_sessions()
        identity, key = open_identity(lab, kind)
        times = []
        with key:
            for _ in range(sessions):
                started = time.perf_counter()
                request_credentials(params(lab), identity, key)
                times.append(time.perf_counter() - started)
            tpm = getattr(key, "counters", None)
        served = lab.create_sessions() - before_service
        times.sort()
        report.row(f"{kind}: CreateSession round trip, median", millis(times[len(times) // 2]))
        report.count(f"{kind}: CreateSessions answered", served, expected=sessions)
        if kind == "softhsm":
            after = _pkcs11_counters()
            signatures = after["signatures"] - before_pkcs11["signatures"]
            report.count("softhsm: signatures", signatures, expected=sessions)
            report.count("softhsm: trial signatures", signatures - served, expected=0)
            report.count("softhsm: logins", after["logins"] - before_pkcs11["logins"], expected=1)
            context = after["context_logins"] - before_pkcs11["context_logins"]
            report.count("softhsm: context-specific logins", context, expected=0)
            report.count("softhsm: session reopens", after["reopens"] - before_pkcs11["reopens"])
        if kind == "swtpm" and tpm is not None:
            report.count("swtpm: signatures", tpm.signatures, expected=sessions)
            report.count("swtpm: trial signatures", tpm.signatures - served, expected=0)
            report.count("swtpm: primary creations", tpm.primaries_created, expected=1)
            report.count("swtpm: key loads", tpm.keys_loaded, expected=1)


def _pkcs11_counters() -> dict[str, int]:
    try:
        from hwsigner.keys.pkcs11 import COUNTERS
    except ImportError:
        return {"signatures": 0, "logins": 0, "context_logins": 0, "reopens": 0}
    return {
        "signatures": COUNTERS.signatures,
        "logins": COUNTERS.logins,
        "context_logins": COUNTERS.context_logins,
        "reopens": COUNTERS.reopens,
    }
