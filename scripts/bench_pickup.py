"""Live pick-up: what looking at the certificate source again costs each CreateSession.

    >>> pickup(lab, report, rounds=200)

A long-running ``Session`` looks at its certificate source before each CreateSession
(``hwsigner.certwatch``): a certificate file costs one ``stat`` per file (certificate and
``--intermediates``) while it is unchanged; a ``pkcs11:`` certificate costs one listing of the
token's certificates through the open session. Each look is timed against handing out the
identity without one (what every CreateSession cost before), and set beside the median
CreateSession round trip on the emulator, which it adds to.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bench_lab import Lab
from bench_report import Report, interleaved, micros, millis
from lab import PROFILE_ARN, ROLE_ARN, TRUST_ANCHOR_ARN

from hwsigner.session import Session
from hwsigner.settings import Settings

BATCHES = {"file": 200, "softhsm": 20, "swtpm": 200}
FLAG_SETTINGS = {
    "--certificate": "certificate",
    "--private-key": "private_key",
    "--intermediates": "intermediates",
    "--pkcs11-lib": "pkcs11_lib",
    "--tpm-tcti": "tpm_tcti",
}


def settings_for(lab: Lab, kind: str) -> Settings:
    flags = lab.flags(kind)
    values: dict[str, Any] = {
        name: flags[flags.index(flag) + 1] for flag, name in FLAG_SETTINGS.items() if flag in flags
    }
    return Settings(
        trust_anchor_arn=TRUST_ANCHOR_ARN,
        profile_arn=PROFILE_ARN,
        role_arn=ROLE_ARN,
        endpoint=lab.emulator.url,
        no_tpm_key_password=kind == "swtpm",
        **values,
    )


def pickup(lab: Lab, report: Report, rounds: int) -> None:
    report.section(
        "live pick-up: the look before each CreateSession",
        f"median per call, {rounds} rounds in turns; none = the identity without a look",
    )
    for kind in lab.kinds():
        with Session.open(settings_for(lab, kind)) as session:
            _measure(report, kind, session, rounds)


def _measure(report: Report, kind: str, session: Session, rounds: int) -> None:
    identity = session.current_identity()  # the first call signs with what was just read
    medians = interleaved(
        [("look", session.current_identity), ("none", lambda: identity)], rounds, BATCHES[kind]
    )
    look = medians["look"] - medians["none"]
    what = "a token certificate listing" if kind == "softhsm" else "one stat per file"
    report.row(f"{kind}: look at the source ({what})", micros(look))
    trips = []
    for _ in range(max(3, rounds // 20)):
        started = time.perf_counter()
        session.fetch()
        trips.append(time.perf_counter() - started)
    trip = sorted(trips)[len(trips) // 2]
    report.row(f"{kind}: CreateSession round trip (emulator), median", millis(trip))
    report.note(f"  the look adds {100 * look / trip:.2f}% to a CreateSession")
    certificate = session.settings.certificate
    if isinstance(certificate, str) and not certificate.startswith("pkcs11:"):
        report.row(
            f"{kind}: look when the file changed (read, parse)",
            micros(_changed(session, certificate)),
        )


def _changed(session: Session, certificate: str) -> float:
    """The look when the certificate file's mtime moved each time (same content: no switch)."""
    path = Path(certificate)
    info = path.stat()
    samples = []
    for step in range(1, 51):
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + step))
        started = time.perf_counter()
        session.current_identity()
        samples.append(time.perf_counter() - started)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    return sorted(samples)[len(samples) // 2]
