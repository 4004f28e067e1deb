"""The README's demo command does what the README says (its install step is CI's own)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import REPO

pytestmark = [
    pytest.mark.softhsm,
    pytest.mark.skipif(shutil.which("softhsm2-util") is None, reason="SoftHSM is not installed"),
]


def test_demo_prints_credentials_from_a_token_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), str(tmp_path / "demo")],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    credentials = json.loads(result.stdout.strip().splitlines()[-1])
    assert credentials["Version"] == 1 and credentials["AccessKeyId"].startswith("ASIA")
    assert "keygen" in result.stdout and "credential-process" in result.stdout
