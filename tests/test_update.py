"""``hwsigner update``: the profile's three keys change, every other byte of the file stays."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest

from hwsigner.credentials import Credentials
from hwsigner.delivery.credfile import set_profile_keys, write_profile

from .conftest import RunningEmulator
from .delivery import (
    expire_in,
    fail_service,
    heal_service,
    isolate_aws,
)
from .helpers import assert_one_line_error, run_cli

KEYS = {"aws_access_key_id": "AKNEW", "aws_secret_access_key": "SNEW", "aws_session_token": "TNEW"}
NEW = "aws_access_key_id = AKNEW\naws_secret_access_key = SNEW\naws_session_token = TNEW\n"


# The text edit


def test_replaces_the_keys_and_keeps_every_other_line() -> None:
    text = (
        "# my credentials\n"
        "[default]\n"
        "aws_access_key_id = OLD\n"
        "; a comment inside\n"
        "aws_secret_access_key=OLD\n"
        "region = eu-west-1\n"
        "aws_session_token = OLD\n"
        "\n"
        "[other]\n"
        "aws_access_key_id = KEEP\n"
        "aws_session_token = KEEP"
    )
    assert set_profile_keys(text, "default", KEYS) == (
        "# my credentials\n"
        "[default]\n"
        "aws_access_key_id = AKNEW\n"
        "; a comment inside\n"
        "aws_secret_access_key = SNEW\n"
        "region = eu-west-1\n"
        "aws_session_token = TNEW\n"
        "\n"
        "[other]\n"
        "aws_access_key_id = KEEP\n"
        "aws_session_token = KEEP"
    )


def test_adds_missing_keys_after_the_last_key_of_the_section() -> None:
    text = "[default]\nregion = us-east-1\n\n# about work\n[work]\nx = 1"
    assert set_profile_keys(text, "default", KEYS) == (
        "[default]\nregion = us-east-1\n" + NEW + "\n# about work\n[work]\nx = 1"
    )


def test_appends_a_missing_profile_after_a_last_line_without_newline() -> None:
    text = "[work]\nx = 1"
    assert set_profile_keys(text, "default", KEYS) == "[work]\nx = 1\n\n[default]\n" + NEW


def test_an_empty_file_gets_the_profile() -> None:
    assert set_profile_keys("", "ci", KEYS) == "[ci]\n" + NEW


def test_a_header_without_newline_at_the_end() -> None:
    assert set_profile_keys("# x\n[ci]", "ci", KEYS) == "# x\n[ci]\n" + NEW


def test_windows_line_endings_are_kept() -> None:
    text = "[default]\r\naws_access_key_id = OLD\r\n[b]\r\nk = v\r\n"
    assert set_profile_keys(text, "default", KEYS) == (
        "[default]\r\naws_access_key_id = AKNEW\r\n"
        "aws_secret_access_key = SNEW\r\naws_session_token = TNEW\r\n[b]\r\nk = v\r\n"
    )


def test_continuations_duplicates_and_case_of_replaced_keys() -> None:
    text = (
        "[default]\n"
        "AWS_Access_Key_Id = OLD\n"
        "aws_session_token =\n"
        "    OLD-PART-1\n"
        "    OLD-PART-2\n"
        "s3 =\n"
        "    max_concurrent_requests = 4\n"
        "aws_access_key_id = DUPLICATE\n"
        "#aws_secret_access_key = commented out\n"
    )
    assert set_profile_keys(text, "default", KEYS) == (
        "[default]\n"
        "aws_access_key_id = AKNEW\n"
        "aws_session_token = TNEW\n"
        "s3 =\n"
        "    max_concurrent_requests = 4\n"
        "aws_secret_access_key = SNEW\n"
        "#aws_secret_access_key = commented out\n"
    )


def test_only_the_named_profile_is_touched() -> None:
    text = "[ default ]\naws_access_key_id = A\n[defaults]\naws_access_key_id = B\n"
    edited = set_profile_keys(text, "default", KEYS)
    assert edited.startswith("[ default ]\naws_access_key_id = AKNEW\n")
    assert edited.endswith("[defaults]\naws_access_key_id = B\n")


# The file


def sample(tag: str = "1") -> Credentials:
    expiry = datetime(2030, 1, 1, tzinfo=timezone.utc)
    return Credentials(f"ASIA{tag}", f"secret{tag}", f"token{tag}", expiry)


def test_a_missing_file_and_directory_are_created_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / ".aws" / "credentials"
    write_profile(path, "default", sample())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text().startswith("[default]\naws_access_key_id = ASIA1\n")


def test_the_file_is_replaced_not_rewritten_in_place(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("[other]\nk = v\n")
    os.chmod(path, 0o644)
    inode = path.stat().st_ino
    write_profile(path, "default", sample())
    assert path.stat().st_ino != inode
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith("-lock")) == [
        "credentials"
    ]


def test_a_symlinked_file_is_written_through_the_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "credentials"
    target.write_text("[other]\nk = v\n")
    link = tmp_path / "credentials"
    link.symlink_to(target)
    write_profile(link, "default", sample())
    assert link.is_symlink()
    assert "[other]\nk = v\n" in target.read_text()
    assert "ASIA1" in target.read_text()


def test_concurrent_writers_of_different_profiles_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("# shared\n")

    def write(name: str) -> None:
        for round_ in range(20):
            write_profile(path, name, sample(f"{name}{round_}"))

    threads = [threading.Thread(target=write, args=(f"p{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    text = path.read_text()
    assert text.startswith("# shared\n")
    for n in range(4):
        assert f"[p{n}]\naws_access_key_id = ASIAp{n}19\n" in text


# The command


def test_once_keeps_the_rest_of_the_file_and_boto3_reads_it(
    flags: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, credentials = isolate_aws(monkeypatch, tmp_path)
    before = (
        "# Managed partly by hand.\n"
        "[default]\n"
        "region = eu-central-1  ; inline note\n"
        "aws_access_key_id = OLDKEY\n"
        "\n"
        "; the CI profile\n"
        "[ci]\n"
        "aws_access_key_id = AKIACIKEEP\n"
        "aws_secret_access_key = ci-secret-keep\n"
        "[work]\n"
        "aws_access_key_id = AKIAWORKKEEP\n"
        "aws_secret_access_key = work-secret-keep"
    )
    credentials.write_text(before)
    result = run_cli("update", *flags, "--once", env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    after = credentials.read_text()
    session = boto3.Session(profile_name="default").get_credentials()
    assert session.method == "shared-credentials-file"
    frozen = session.get_frozen_credentials()
    assert frozen.access_key.startswith("ASIA") and frozen.token
    expected = set_profile_keys(
        before,
        "default",
        {
            "aws_access_key_id": frozen.access_key,
            "aws_secret_access_key": frozen.secret_key,
            "aws_session_token": frozen.token,
        },
    )
    assert after == expected
    assert after.endswith("aws_secret_access_key = work-secret-keep")  # no newline, not dropped
    ci = boto3.Session(profile_name="ci").get_credentials().get_frozen_credentials()
    assert ci.access_key == "AKIACIKEEP"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert_no_secrets(result.stdout + result.stderr, frozen.secret_key, frozen.token)


def test_once_creates_a_missing_file_for_a_named_profile(flags: list[str], tmp_path: Path) -> None:
    path = tmp_path / "home" / ".aws" / "credentials"
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(path)}
    result = run_cli("update", *flags, "--once", "--profile", "ra", env=env)
    assert result.returncode == 0, result.stderr
    assert path.read_text().startswith("[ra]\naws_access_key_id = ASIA")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_parallel_updaters_of_two_profiles_keep_both(flags: list[str], tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("[keep]\nx = 1\n")
    env = {**os.environ, "AWS_SHARED_CREDENTIALS_FILE": str(path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hwsigner", "update", *flags, "--once", "--profile", name],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("a", "b", "c")
    ]
    for proc in procs:
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    text = path.read_text()
    assert text.startswith("[keep]\nx = 1\n")
    assert all(f"[{name}]\naws_access_key_id = ASIA" in text for name in "abc")


def test_a_bad_profile_name_is_one_line(flags: list[str], tmp_path: Path) -> None:
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "c")}
    assert_one_line_error(run_cli("update", *flags, "--profile", "a]b", env=env), "--profile")


def test_a_service_error_at_start_is_one_line(
    own_emulator: RunningEmulator, flags: list[str], tmp_path: Path
) -> None:
    fail_service(own_emulator.url, status=403)
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "c")}
    assert_one_line_error(run_cli("update", *flags, "--once", env=env), "AccessDenied")
    assert not (tmp_path / "c").exists()


class Updater:
    """``hwsigner update`` running in the background, its stderr collected as it comes."""

    def __init__(self, flags: list[str], path: Path) -> None:
        env = {**os.environ, "AWS_SHARED_CREDENTIALS_FILE": str(path)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hwsigner", "update", *flags],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        self.process.send_signal(signum)
        self.process.wait(timeout=30)  # not communicate(): the reader thread owns stderr
        assert self.process.stdout is not None and self.process.stderr is not None
        with self.process.stdout:
            out = self.process.stdout.read()
        self._reader.join(10)
        self.process.stderr.close()
        return self.process.returncode, out + "".join(self.lines)


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def key_in_file(path: Path) -> str | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("aws_access_key_id = "):
                return line.split(" = ")[1]
    except FileNotFoundError:
        pass
    return None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_loop_refreshes_survives_failures_and_stops_cleanly(
    own_emulator: RunningEmulator, flags: list[str], tmp_path: Path, signum: int
) -> None:
    # Credentials that live 6 seconds: the loop refreshes them 3 seconds before they expire.
    expire_in(own_emulator.url, 6)
    path = tmp_path / "credentials"
    path.write_text("# keep me\n[other]\nk = v")
    updater = Updater(flags, path)
    failed = "refreshing credentials failed"
    try:
        wait_for(lambda: key_in_file(path) is not None)
        first = key_in_file(path)
        wait_for(lambda: key_in_file(path) not in (None, first))  # refreshed before expiry
        fail_service(own_emulator.url)
        wait_for(lambda: updater.count(failed) >= 1)
        failed_at = key_in_file(path)
        wait_for(lambda: updater.count(failed) >= 2)  # retried; the loop keeps running
        assert updater.process.poll() is None
        assert key_in_file(path) == failed_at  # the last good credentials stay in the file
        heal_service(own_emulator.url)
        wait_for(lambda: key_in_file(path) not in (None, failed_at))  # and recovers
    finally:
        code, output = updater.stop(signum)
    assert code == 0, output
    assert path.read_text().startswith("# keep me\n[other]\nk = v\n")
    assert "Traceback" not in output
    assert_no_secrets(output, *secrets_in(path))


def secrets_in(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    return [
        line.split(" = ", 1)[1]
        for line in lines
        if line.startswith(("aws_secret_access_key = ", "aws_session_token = "))
    ]


def assert_no_secrets(output: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret and secret not in output
