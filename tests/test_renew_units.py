"""The systemd timer and service of docs/lifecycle.md: ``systemd-analyze verify`` accepts them,
and the service's ``hwsigner renew`` command line is one the CLI understands."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import REPO, assert_one_line_error, run_cli

DOC = REPO / "docs" / "lifecycle.md"
UNIT = re.compile(r"```ini\n# /etc/systemd/system/(hwsigner-renew\.\w+)\n(.*?)```", re.S)
INSTALLED = "/usr/local/bin/hwsigner"


def units() -> dict[str, str]:
    found = {name: body for name, body in UNIT.findall(DOC.read_text())}
    assert set(found) == {"hwsigner-renew.service", "hwsigner-renew.timer"}
    return found


def hwsigner_command() -> str:
    """The installed ``hwsigner`` (the docs' /usr/local/bin/hwsigner may not exist here)."""
    beside = Path(sys.executable).parent / "hwsigner"
    found = str(beside) if beside.exists() else shutil.which("hwsigner")
    if not found:
        pytest.skip("no installed hwsigner command to put in ExecStart")
    return found


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    paths = []
    for name, body in units().items():
        path = tmp_path / name
        path.write_text(body.replace(INSTALLED, hwsigner_command()))
        paths.append(str(path))
    done = subprocess.run(
        ["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "hwsigner-renew" not in done.stderr, done.stderr  # no warning about our units


def test_the_service_command_line_is_understood() -> None:
    service = units()["hwsigner-renew.service"]
    line = re.search(r"^ExecStart=(.*?)(?<!\\)\n", service, re.S | re.M)
    assert line
    words = shlex.split(line[1].replace("\\\n", " "))
    assert words[:2] == [INSTALLED, "renew"]
    result = run_cli(*words[1:])  # the flags parse; the files of a real device are absent here
    assert_one_line_error(result, "file not found: /etc/hwsigner/device.pem")
