"""``hwsigner export-credentials``: the formats of ``aws configure export-credentials``."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hwsigner.cli.credentials import render
from hwsigner.credentials import Credentials
from hwsigner.errors import ServiceError

from .conftest import RunningEmulator
from .delivery import create_sessions
from .helpers import assert_one_line_error, process_credentials, run_cli

SAMPLE = Credentials(
    "ASIAEXAMPLE", "se/cr+et=", "to+ken/==", datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
)


@pytest.mark.parametrize(
    ("fmt", "first_line"),
    [
        ("env", "export AWS_ACCESS_KEY_ID=ASIAEXAMPLE"),
        ("env-no-export", "AWS_ACCESS_KEY_ID=ASIAEXAMPLE"),
        ("powershell", '$Env:AWS_ACCESS_KEY_ID="ASIAEXAMPLE"'),
        ("windows-cmd", "set AWS_ACCESS_KEY_ID=ASIAEXAMPLE"),
        ("fish", 'set -gx AWS_ACCESS_KEY_ID "ASIAEXAMPLE"'),
    ],
)
def test_line_formats(fmt: str, first_line: str) -> None:
    lines = render(SAMPLE, fmt).splitlines()
    assert lines[0] == first_line
    assert [line.split("AWS_")[1].split("=")[0].split(" ")[0].strip('"') for line in lines] == [
        "ACCESS_KEY_ID",
        "SECRET_ACCESS_KEY",
        "SESSION_TOKEN",
        "CREDENTIAL_EXPIRATION",
    ]
    assert "2030-01-02T03:04:05Z" in lines[3]


def test_process_format_is_the_credential_process_json() -> None:
    assert json.loads(render(SAMPLE, "process")) == json.loads(SAMPLE.to_process_json())


def test_a_value_a_shell_would_interpret_is_refused() -> None:
    bad = Credentials("ASIA$(reboot)", "s", "t", SAMPLE.expiration)
    with pytest.raises(ServiceError):
        render(bad, "env")


def test_eval_in_a_shell_sets_the_variables(flags: list[str]) -> None:
    result = run_cli("export-credentials", *flags, "--format", "env")
    assert result.returncode == 0, result.stderr
    script = result.stdout + 'printf "%s\\n" "$AWS_ACCESS_KEY_ID" "$AWS_SESSION_TOKEN"'
    shown = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    key_id, token = shown.stdout.splitlines()
    assert key_id.startswith("ASIA")
    assert f"export AWS_SESSION_TOKEN={token}\n" in result.stdout


def test_default_format_is_process(flags: list[str]) -> None:
    process_credentials(run_cli("export-credentials", *flags))


def test_cache_is_shared_with_credential_process(
    own_emulator: RunningEmulator, flags: list[str], tmp_path: Path
) -> None:
    cache = ["--cache", "--cache-dir", str(tmp_path / "c")]
    data = process_credentials(run_cli("credential-process", *flags, *cache))
    result = run_cli("export-credentials", *flags, *cache, "--format", "env-no-export")
    assert f"AWS_ACCESS_KEY_ID={data['AccessKeyId']}\n" in result.stdout
    assert create_sessions(own_emulator.url) == 1


def test_unknown_format_is_one_line(flags: list[str]) -> None:
    assert_one_line_error(run_cli("export-credentials", *flags, "--format", "xml"), "--format")
