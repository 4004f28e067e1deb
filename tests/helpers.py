"""What many tests share: running the CLI as the user does, and the ARNs the emulator accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO.parent / "shared" / "vectors" / "official-helper"

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
