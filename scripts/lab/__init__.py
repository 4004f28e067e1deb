"""What the tests, the demo's checks and the benchmarks share: the emulator as a subprocess,
the ARNs it is asked for, SoftHSM tokens (``lab.softhsm``) and swtpm (``lab.swtpm``).

    running = start_emulator(pki.root_cert)           # ``hwsigner emulator --port 0``
    ...                                               # credential commands with ARN_FLAGS
    stop(running.process)

No pytest here: tests/ adds its fixtures and skip markers on top.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ACCOUNT = "111122223333"
REGION = "us-east-1"
TRUST_ANCHOR_ARN = f"arn:aws:rolesanywhere:{REGION}:{ACCOUNT}:trust-anchor/ta-0001"
PROFILE_ARN = f"arn:aws:rolesanywhere:{REGION}:{ACCOUNT}:profile/pr-0001"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/hwsigner-test"
ARN_FLAGS = [
    "--trust-anchor-arn",
    TRUST_ANCHOR_ARN,
    "--profile-arn",
    PROFILE_ARN,
    "--role-arn",
    ROLE_ARN,
]


@dataclass
class RunningEmulator:
    url: str
    process: subprocess.Popen[str]


def start_emulator(*anchors: Path, extra: tuple[str, ...] = ()) -> RunningEmulator:
    """``hwsigner emulator --port 0`` as a subprocess; its first stdout line is its URL."""
    flags = [arg for anchor in anchors for arg in ("--trust-anchor", str(anchor))]
    process = subprocess.Popen(
        [sys.executable, "-m", "hwsigner", "emulator", "--port", "0", *flags, *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        process.kill()
        _, err = process.communicate(timeout=10)
        raise RuntimeError(f"emulator did not start: {url!r} {err}")
    return RunningEmulator(url, process)


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
