"""The README's demo command does what the README says (its install step is CI's own)."""

from __future__ import annotations

import json
import os
import re
import shlex
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
    printed = next(line for line in result.stdout.splitlines() if line.startswith('{"Version"'))
    credentials = json.loads(printed)
    assert credentials["Version"] == 1 and credentials["AccessKeyId"].startswith("ASIA")
    assert "keygen" in result.stdout and "credential-process" in result.stdout


def test_what_next_works_as_printed(tmp_path: Path) -> None:
    """The demo's "what next" lines, run as printed: the emulator command, the profile in a
    config file, the boto3 command; and the README's profile is the same line."""
    from .swtpm import free_port_pair

    port = free_port_pair()
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), str(tmp_path / "demo"),
         "--port", str(port)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line.strip() for line in result.stdout.split("== what next", 1)[1].splitlines()]
    emulator_line = next(line for line in lines if " emulator --port " in line)
    profile = lines.index("[profile hwsigner-demo]")
    config = tmp_path / "config"
    config.write_text(f"{lines[profile]}\n{lines[profile + 1]}\n")
    use = next(line for line in lines if "boto3.Session" in line)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    emulator = subprocess.Popen(shlex.split(emulator_line), stdout=subprocess.PIPE, text=True)
    try:
        assert emulator.stdout is not None
        assert emulator.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        used = subprocess.run(["/bin/sh", "-c", use], env=env, capture_output=True, text=True)
    finally:
        emulator.terminate()
        emulator.communicate(timeout=10)
    assert used.returncode == 0 and used.stdout.startswith("ASIA"), used.stderr
    readme = (REPO / "README.md").read_text()
    shown = re.search(r"^credential_process = env SOFTHSM2_CONF=.*$", readme, re.MULTILINE)
    assert shown, "README.md shows the demo's profile"
    generic = re.sub(r"/\S*/(?=hwsigner |softhsm/)", "/DIR/", lines[profile + 1])
    generic = generic.replace(f":{port}", ":8080")
    assert re.sub(r"/\S*/(?=hwsigner |softhsm/)", "/DIR/", shown.group(0)) == generic
