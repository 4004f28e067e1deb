"""``credential-process --cache``: one CreateSession for many invocations, never a wrong answer.

The cache module is tested directly for its trust rules; the CLI is run as the AWS CLI runs it,
against an emulator of this module's own whose CreateSession calls are counted.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest

from hwsigner.credentials import Credentials, format_time
from hwsigner.delivery.cache import CredentialCache, cache_key

from .conftest import RunningEmulator
from .delivery import create_sessions, fail_service, isolate_aws
from .helpers import process_credentials, run_cli

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


def credentials_valid_for(minutes: float, now: datetime = NOW) -> Credentials:
    return Credentials(
        "ASIAEXAMPLEEXAMPLE", "secret/key", "token+value", now + timedelta(minutes=minutes)
    )


def at(moment: datetime) -> float:
    return moment.timestamp()


# The cache module


def test_an_entry_is_used_while_more_than_fifteen_minutes_remain(tmp_path: Path) -> None:
    """botocore runs credential_process again once 15 minutes remain: the cache must not answer
    it with the same credentials then."""
    cache = CredentialCache(tmp_path / "c")
    cache.put("k1", credentials_valid_for(60), at(NOW))
    found = cache.get("k1", at(NOW + timedelta(minutes=44)))
    assert found is not None
    assert Credentials.from_process_json(found) == credentials_valid_for(60)
    assert cache.get("k1", at(NOW + timedelta(minutes=45))) is None
    assert cache.get("k1", at(NOW + timedelta(minutes=46))) is None


def test_a_short_entry_is_used_for_half_its_lifetime(tmp_path: Path) -> None:
    """A 900-second session stays cacheable: reused for its first 7.5 minutes."""
    cache = CredentialCache(tmp_path / "c")
    cache.put("k1", credentials_valid_for(15), at(NOW))
    assert cache.get("k1", at(NOW + timedelta(minutes=7))) is not None
    assert cache.get("k1", at(NOW + timedelta(minutes=7.5))) is None


def test_a_stale_entry_is_kept_for_an_outage_until_a_minute_remains(tmp_path: Path) -> None:
    cache = CredentialCache(tmp_path / "c")
    cache.put("k1", credentials_valid_for(60), at(NOW))
    assert cache.get("k1", at(NOW + timedelta(minutes=58)), stale=True) is not None
    assert cache.get("k1", at(NOW + timedelta(minutes=59)), stale=True) is None


def test_files_are_0600_in_a_0700_directory(tmp_path: Path) -> None:
    cache = CredentialCache(tmp_path / "deep" / "c")
    cache.put("k1", credentials_valid_for(60))
    assert stat.S_IMODE(os.stat(tmp_path / "deep" / "c").st_mode) == 0o700
    assert [p.name for p in (tmp_path / "deep" / "c").iterdir()] == ["k1.json"]
    assert stat.S_IMODE(os.stat(cache.entry_path("k1")).st_mode) == 0o600


def test_a_too_open_directory_of_ours_is_closed(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)  # noqa: S103 - the mistake under test
    CredentialCache(directory).put("k1", credentials_valid_for(60))
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700


@pytest.mark.parametrize(
    "damage",
    ["garbage", "not-json-object", "other-key", "empty-secret", "bad-expiration", "truncated"],
)
def test_a_corrupt_entry_is_ignored_and_replaced(tmp_path: Path, damage: str) -> None:
    cache = CredentialCache(tmp_path / "c")
    cache.put("k1", credentials_valid_for(60))
    path = cache.entry_path("k1")
    entry = json.loads(path.read_text())
    if damage == "garbage":
        text = "\x00\xff not json"
    elif damage == "not-json-object":
        text = "[1, 2]"
    elif damage == "other-key":
        text = json.dumps({**entry, "key": "k2"})
    elif damage == "empty-secret":
        text = json.dumps({**entry, "credentials": {**entry["credentials"], "SecretAccessKey": ""}})
    elif damage == "bad-expiration":
        text = json.dumps({**entry, "credentials": {**entry["credentials"], "Expiration": "soon"}})
    else:
        text = path.read_text()[:40]
    path.write_text(text)
    assert cache.get("k1", at(NOW)) is None
    cache.put("k1", credentials_valid_for(30))
    assert cache.get("k1", at(NOW)) is not None


def test_an_entry_others_can_read_is_not_trusted(tmp_path: Path) -> None:
    cache = CredentialCache(tmp_path / "c")
    cache.put("k1", credentials_valid_for(60))
    os.chmod(cache.entry_path("k1"), 0o644)
    assert cache.get("k1", at(NOW)) is None
    cache.put("k1", credentials_valid_for(60))  # replaced by a private file
    assert stat.S_IMODE(os.stat(cache.entry_path("k1")).st_mode) == 0o600
    assert cache.get("k1", at(NOW)) is not None


@pytest.mark.skipif(
    os.geteuid() != 0,
    reason=(
        "not root:"
        " the check that a cache entry owned by another user is ignored is skipped"
        " (it runs in CI as root)"
    ),
)
def test_an_entry_owned_by_someone_else_is_not_trusted(tmp_path: Path) -> None:
    cache = CredentialCache(tmp_path / "c")
    cache.put("k1", credentials_valid_for(60))
    os.chown(cache.entry_path("k1"), 4242, 4242)
    assert cache.get("k1", at(NOW)) is None
    cache.put("k1", credentials_valid_for(60))
    assert os.stat(cache.entry_path("k1")).st_uid == os.geteuid()
    assert cache.get("k1", at(NOW)) is not None


def test_a_symlinked_entry_is_not_followed(tmp_path: Path) -> None:
    cache = CredentialCache(tmp_path / "c")
    cache.put("k1", credentials_valid_for(60))
    cache.entry_path("k1").rename(tmp_path / "elsewhere.json")
    cache.entry_path("k1").symlink_to(tmp_path / "elsewhere.json")
    assert cache.get("k1", at(NOW)) is None


def test_concurrent_writers_and_readers_never_see_a_torn_entry(tmp_path: Path) -> None:
    cache = CredentialCache(tmp_path / "c")
    cache.put("k1", credentials_valid_for(60))
    stop = threading.Event()
    bad: list[str] = []

    def write(minutes: int) -> None:
        while not stop.is_set():
            cache.put("k1", credentials_valid_for(minutes))

    def read() -> None:
        while not stop.is_set():
            if cache.get("k1", at(NOW)) is None:
                bad.append("miss")

    threads = [threading.Thread(target=write, args=(m,)) for m in (30, 60)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join()
    assert bad == []
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["k1.json"]  # no temp files left


def test_the_key_covers_every_input_and_the_certificate_content(tmp_path: Path) -> None:
    cert = tmp_path / "leaf.pem"
    cert.write_text("first certificate")
    fields = {"role_arn": "arn:aws:iam::111122223333:role/a", "session_duration": 3600}
    key = cache_key(fields, [str(cert)])
    assert cache_key(dict(fields), [str(cert)]) == key
    assert cache_key({**fields, "session_duration": 900}, [str(cert)]) != key
    assert cache_key({**fields, "role_session_name": "x"}, [str(cert)]) != key
    cert.write_text("renewed certificate")
    assert cache_key(fields, [str(cert)]) != key


# The CLI


def cached(*args: object, cache_dir: Path) -> dict[str, object]:
    result = run_cli("credential-process", *args, "--cache", "--cache-dir", cache_dir)
    return process_credentials(result)


def test_two_cached_invocations_cost_one_create_session(
    own_emulator: RunningEmulator, flags: list[str], tmp_path: Path
) -> None:
    first = cached(*flags, cache_dir=tmp_path / "c")
    second = cached(*flags, cache_dir=tmp_path / "c")
    assert first == second
    assert create_sessions(own_emulator.url) == 1
    files = list((tmp_path / "c").iterdir())
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "c").stat().st_mode) == 0o700


def test_a_different_role_session_name_is_not_served_from_the_cache(
    own_emulator: RunningEmulator, flags: list[str], tmp_path: Path
) -> None:
    first = cached(*flags, "--role-session-name", "alice", cache_dir=tmp_path / "c")
    other = cached(*flags, "--role-session-name", "bob", cache_dir=tmp_path / "c")
    again = cached(*flags, "--role-session-name", "alice", cache_dir=tmp_path / "c")
    assert first["AccessKeyId"] != other["AccessKeyId"]
    assert again == first
    assert create_sessions(own_emulator.url) == 2


def test_a_different_duration_is_not_served_from_the_cache(
    own_emulator: RunningEmulator, flags: list[str], tmp_path: Path
) -> None:
    first = cached(*flags, cache_dir=tmp_path / "c")
    other = cached(*flags, "--session-duration", "900", cache_dir=tmp_path / "c")
    assert first["AccessKeyId"] != other["AccessKeyId"]
    assert create_sessions(own_emulator.url) == 2


def test_without_cache_every_invocation_calls_the_service(
    own_emulator: RunningEmulator, flags: list[str]
) -> None:
    for _ in range(2):
        process_credentials(run_cli("credential-process", *flags))
    assert create_sessions(own_emulator.url) == 2


def test_a_hit_touches_neither_key_nor_network_nor_heavy_modules(
    own_emulator: RunningEmulator, flags: list[str], tmp_path: Path
) -> None:
    first = cached(*flags, cache_dir=tmp_path / "c")
    key_path = Path(flags[flags.index("--private-key") + 1])
    key_path.rename(tmp_path / "moved.key")  # a hit must not need the key
    code = (
        "import sys\nfrom hwsigner.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "sys.stderr.write(' '.join(sorted(sys.modules)))\n"
        "sys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "credential-process", *flags,
         "--cache", "--cache-dir", str(tmp_path / "c")],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == first
    loaded = set(result.stderr.split())
    ours = {name for name in loaded if name.startswith("hwsigner")}
    assert ours <= {"hwsigner", "hwsigner.cli", "hwsigner.cli.cache_hit", "hwsigner.settings",
                    "hwsigner.cli.sources",
                    "hwsigner.delivery", "hwsigner.delivery.cache", "hwsigner.delivery.cache_entry",
                    "hwsigner._safe", "hwsigner._log", "hwsigner.errors"}, ours  # fmt: skip
    heavy = {"cryptography", "pkcs11", "tpm2_pytss", "boto3", "botocore", "asn1crypto"}
    assert not {name.split(".")[0] for name in loaded} & heavy
    # each of these costs more than half of a bare interpreter's start-up (docs/performance.md)
    bare = subprocess.run(
        [sys.executable, "-c", "import sys; print(' '.join(sys.modules))"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    added = loaded - set(bare)
    unwanted = {"argparse", "json", "re", "pathlib", "typing", "logging", "contextlib"}
    assert not added & unwanted, added
    assert create_sessions(own_emulator.url) == 1


def test_a_file_key_miss_does_not_load_logging(flags: list[str]) -> None:
    """Debug lines go through hwsigner._log: ``logging`` (about 5 ms) waits for ``--debug``."""
    code = (
        "import sys\nfrom hwsigner.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "sys.stderr.write(' '.join(sorted(sys.modules)))\n"
        "sys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "credential-process", *flags],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Version"] == 1
    assert "logging" not in result.stderr.split()


def test_parallel_cold_invocations_share_one_create_session(
    own_emulator: RunningEmulator, flags: list[str], tmp_path: Path
) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: cached(*flags, cache_dir=tmp_path / "c"), range(8)))
    assert all(result == results[0] for result in results)
    assert create_sessions(own_emulator.url) == 1


def test_a_corrupt_cache_file_is_replaced_by_fresh_credentials(
    own_emulator: RunningEmulator, flags: list[str], tmp_path: Path
) -> None:
    first = cached(*flags, cache_dir=tmp_path / "c")
    for path in (tmp_path / "c").glob("*.json"):
        path.write_text('{"format": 1, "key": "')
    second = cached(*flags, cache_dir=tmp_path / "c")
    third = cached(*flags, cache_dir=tmp_path / "c")
    assert second["AccessKeyId"] != first["AccessKeyId"]
    assert third == second
    assert create_sessions(own_emulator.url) == 2


def test_an_entry_about_to_expire_is_refreshed(
    own_emulator: RunningEmulator, flags: list[str], tmp_path: Path
) -> None:
    first = cached(*flags, cache_dir=tmp_path / "c")
    (entry,) = (tmp_path / "c").glob("*.json")
    data = json.loads(entry.read_text())
    soon = datetime.now(timezone.utc) + timedelta(minutes=4)
    data["credentials"]["Expiration"] = format_time(soon)
    data["reuse_until"] = int(soon.timestamp()) - 15 * 60  # as put writes it for an hour
    entry.write_text(json.dumps(data))
    second = cached(*flags, cache_dir=tmp_path / "c")
    assert second["AccessKeyId"] != first["AccessKeyId"]
    assert create_sessions(own_emulator.url) == 2


def test_a_failed_refresh_hands_out_the_still_valid_entry_with_a_warning(
    own_emulator: RunningEmulator, flags: list[str], tmp_path: Path
) -> None:
    first = cached(*flags, cache_dir=tmp_path / "c")
    (entry,) = (tmp_path / "c").glob("*.json")
    data = json.loads(entry.read_text())
    data["reuse_until"] = int(time.time()) - 1  # due for a refresh, still valid for an hour
    entry.write_text(json.dumps(data))
    fail_service(own_emulator.url)
    result = run_cli("credential-process", *flags, "--cache", "--cache-dir", tmp_path / "c")
    assert process_credentials(result)["AccessKeyId"] == first["AccessKeyId"]
    (line,) = result.stderr.splitlines()
    assert line.startswith("hwsigner: warning: ") and "using cached credentials valid until" in line
    data["credentials"]["Expiration"] = format_time(
        datetime.now(timezone.utc) + timedelta(seconds=50)
    )
    entry.write_text(json.dumps(data))  # under a minute left: not handed out any more
    result = run_cli("credential-process", *flags, "--cache", "--cache-dir", tmp_path / "c")
    assert result.returncode == 1 and "ASIA" not in result.stdout


def test_a_cache_that_cannot_be_written_still_gives_the_credentials(
    own_emulator: RunningEmulator, flags: list[str], tmp_path: Path
) -> None:
    first = run_cli("credential-process", *flags, "--cache", "--cache-dir", tmp_path / "c")
    (entry,) = (tmp_path / "c").glob("*.json")
    entry.unlink()
    entry.mkdir()  # the rename onto it fails
    result = run_cli("credential-process", *flags, "--cache", "--cache-dir", tmp_path / "c")
    data = process_credentials(result)
    assert data["AccessKeyId"] != process_credentials(first)["AccessKeyId"]
    assert result.stderr.startswith("hwsigner: warning: not cached: cannot write the cache entry")
    assert len(result.stderr.splitlines()) == 1
    assert [p.name for p in (tmp_path / "c").iterdir() if p.name.startswith(".tmp")] == []


def test_the_default_directory_follows_xdg_cache_home(
    own_emulator: RunningEmulator, flags: list[str], tmp_path: Path
) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    for _ in range(2):
        process_credentials(run_cli("credential-process", *flags, "--cache", env=env))
    assert list((tmp_path / "xdg" / "hwsigner").glob("*.json"))
    assert create_sessions(own_emulator.url) == 1


@pytest.mark.parametrize("use_cache", [False, True])
def test_boto3_resolves_credentials_from_a_credential_process_line(
    own_emulator: RunningEmulator,
    flags: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    use_cache: bool,
) -> None:
    config, _ = isolate_aws(monkeypatch, tmp_path)
    command = [sys.executable, "-m", "hwsigner", "credential-process", *flags]
    if use_cache:
        command += ["--cache", "--cache-dir", str(tmp_path / "c")]
    config.write_text(
        f"[profile ra]\ncredential_process = {shlex.join(command)}\nregion = us-east-1\n"
    )
    found = [boto3.Session(profile_name="ra").get_credentials() for _ in range(2)]
    assert [c.method for c in found] == ["custom-process"] * 2
    frozen = [c.get_frozen_credentials() for c in found]
    assert all(f.access_key.startswith("ASIA") and f.token for f in frozen)
    assert create_sessions(own_emulator.url) == (1 if use_cache else 2)


# A long-running boto3 program, 46 minutes into an hour-long entry (botocore's clock, and the
# clock of the credential_process runs it starts, moved forward: waiting is not an option).
SHIFTED_TIME = """
import os, time
shift = float(os.environ.get("HWSIGNER_TEST_CLOCK_SHIFT") or 0)
if shift:
    real_time = time.time
    time.time = lambda: real_time() + shift
"""
LONG_RUNNING = """
import datetime, json, os, sys, urllib.request
import boto3
from botocore.credentials import _local_now

emulator, count, shift = sys.argv[1], sys.argv[2], 46 * 60

def runs():
    with open(count) as f:
        return len(f.readlines())

def expire_in(seconds):
    body = json.dumps({"expiresIn": seconds}).encode()
    urllib.request.urlopen(urllib.request.Request(emulator + "/_emulator/settings", body))

expire_in(3600)
credentials = boto3.Session(profile_name="device").get_credentials()
for _ in range(10):
    credentials.get_frozen_credentials()
first = runs()
# 46 minutes later: 14 minutes left, inside botocore's 15-minute refresh window
credentials._time_fetcher = lambda: _local_now() + datetime.timedelta(seconds=shift)
os.environ["HWSIGNER_TEST_CLOCK_SHIFT"] = str(shift)
expire_in(shift + 3600)  # what the emulator issues now lasts an hour on the moved clock
for _ in range(10):
    credentials.get_frozen_credentials()
print(first, runs() - first)
"""


def test_a_long_running_boto3_program_runs_credential_process_once_per_refresh(
    own_emulator: RunningEmulator,
    flags: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In the last 15 minutes of an entry botocore runs credential_process on every call until
    it gets credentials with more left: the cache must not answer with the same entry then."""
    config, _ = isolate_aws(monkeypatch, tmp_path)
    (tmp_path / "clock").mkdir()
    (tmp_path / "clock" / "sitecustomize.py").write_text(SHIFTED_TIME)
    count = tmp_path / "runs"
    count.touch()
    wrapper = tmp_path / "hwsigner-counted"
    wrapper.write_text(
        f'#!/bin/sh\necho run >> "{count}"\nexec "{sys.executable}" -m hwsigner "$@"\n'
    )
    wrapper.chmod(0o755)
    line = shlex.join([str(wrapper), "credential-process", "--cache", "--cache-dir",
                       str(tmp_path / "c"), *flags])  # fmt: skip
    config.write_text(f"[profile device]\ncredential_process = {line}\n")
    repo = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path / 'clock'}{os.pathsep}{repo}")
    monkeypatch.delenv("HWSIGNER_TEST_CLOCK_SHIFT", raising=False)
    result = subprocess.run(
        [sys.executable, "-c", LONG_RUNNING, own_emulator.url, str(count)],
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1"]  # one run at the start, one at the refresh
    assert create_sessions(own_emulator.url) == 2
