"""What many tests share: running the CLI as the user does, and the ARNs the emulator accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from scripts.lab import ACCOUNT, ARN_FLAGS, PROFILE_ARN, REGION, ROLE_ARN, TRUST_ANCHOR_ARN

__all__ = [  # the ARNs live in scripts/lab (the benchmarks use them too)
    "ACCOUNT",
    "ARN_FLAGS",
    "PROFILE_ARN",
    "REGION",
    "REPO",
    "ROLE_ARN",
    "TRUST_ANCHOR_ARN",
    "VECTORS",
    "assert_one_line_error",
    "process_credentials",
    "run_cli",
]

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO.parent / "shared" / "vectors" / "official-helper"


def run_cli(
    *args: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python -m hwsigner ARGS`` with no stdin, as the AWS CLI runs ``credential_process``."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hwsigner", *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        start_new_session=True,  # no controlling terminal: a prompt cannot block the test
    )


def process_credentials(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """Read stdout as botocore's credential_process provider does, checking the contract."""
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    assert list(data) == ["Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"]
    assert data["Version"] == 1
    return data


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 1, nothing on stdout, one line on stderr that contains each needle, no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
