"""A hostile or broken CreateSession endpoint: every answer ends in one line and exit 1.

The promise checked for each named behaviour of ``tests/hostile.py``: exit 1, nothing on
stdout, one line on stderr, no traceback, no secret the endpoint sent, no terminal escape,
and nothing written (``update --once`` leaves the credentials file untouched).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hwsigner.devpki import DevPki
from hwsigner.errors import NetworkError
from hwsigner.sigv4x509 import Request
from hwsigner.transport import HttpTransport

from .helpers import ARN_FLAGS, assert_one_line_error, process_credentials, run_cli
from .hostile import CANNED, INJECTED, SECRET, HostileServer

ONE_TRY = {"AWS_MAX_ATTEMPTS": "1"}


@pytest.fixture(scope="module")
def leaf(pki: DevPki) -> list[str]:
    cert, key = pki.new_leaf("ec-p256", "hostile", by_root=True)
    return ["--certificate", str(cert), "--private-key", str(key), *ARN_FLAGS]


def assert_promise(result, *needles: str) -> str:
    line = assert_one_line_error(result, *needles)
    for secret in (SECRET, INJECTED, "hostileTOKEN", "\x1b", "\x9b", "\x07"):
        assert secret not in result.stderr, result.stderr
    return line


# behaviour -> what the one line says
FAILURES = {
    "deep-json-201": "without usable credentials",
    "deep-json-403": "HTTP403",
    "injection-secret": "SecretAccessKey is not in the form AWS issues",
    "injection-token": "SessionToken is not in the form AWS issues",
    "injection-key-id": "AccessKeyId is not in the form AWS issues",
    "expired": "already expired",
    "escape-codes": "AccessDeniedException",
    "bad-status-line": "cannot reach",
    "bad-chunking": "malformed HTTP answer",
    "not-json": "without usable credentials",
    "reset": "cannot reach",
    "huge-body": "without usable credentials",
}


def test_every_canned_behaviour_is_covered() -> None:
    assert set(CANNED) - {"ok"} <= set(FAILURES)


@pytest.mark.parametrize("behaviour", sorted(FAILURES))
def test_credential_process_keeps_its_promise(leaf: list[str], behaviour: str) -> None:
    with HostileServer(behaviour) as server:
        result = run_cli("credential-process", *leaf, "--endpoint", server.url, env=ONE_TRY)
    assert_promise(result, FAILURES[behaviour])


@pytest.mark.parametrize(
    "behaviour", ["injection-secret", "injection-token", "expired", "escape-codes"]
)
def test_update_writes_nothing(leaf: list[str], tmp_path: Path, behaviour: str) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[other]\naws_access_key_id = KEEP\n")
    before = credentials.read_bytes()
    env = {**ONE_TRY, "AWS_SHARED_CREDENTIALS_FILE": str(credentials)}
    with HostileServer(behaviour) as server:
        result = run_cli("update", "--once", *leaf, "--endpoint", server.url, env=env)
    assert_promise(result, FAILURES[behaviour])
    assert credentials.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["credentials"]  # no temporary copy left


def test_the_control_answer_is_accepted(leaf: list[str]) -> None:
    with HostileServer("ok") as server:
        data = process_credentials(run_cli("credential-process", *leaf, "--endpoint", server.url))
    assert data["SecretAccessKey"] == SECRET


def test_a_dripping_endpoint_meets_the_total_deadline() -> None:
    """Each byte comes well within the read timeout; the attempt's deadline ends it."""
    transport = HttpTransport(read_timeout=30, total_timeout=1.0)
    with HostileServer("drip", drip=0.3) as server:
        request = Request("POST", f"{server.url}/sessions", (), b"{}")
        with pytest.raises(NetworkError, match="timed out"):
            transport(request)


def test_a_body_after_connection_close_is_read_whole() -> None:
    """http.client closes its connection on ``Connection: close`` before reading the body: the
    socket must stay open until the body is in (it was closed under it: EBADF under load)."""
    with HostileServer("late-body") as server:
        request = Request("POST", f"{server.url}/sessions", (), b"{}")
        response = HttpTransport()(request)
    assert response.status == 201 and SECRET.encode() in response.body


def test_the_deadline_is_30_seconds_by_default() -> None:
    assert HttpTransport().total_timeout == 30.0


@pytest.mark.parametrize(
    "endpoint",
    ["http://[::1", "http://127.0.0.1:99999", "http://127.0.0.1:abc", "http://a\r\nb.example"],
)
def test_a_malformed_endpoint_is_one_line(leaf: list[str], endpoint: str) -> None:
    result = run_cli("credential-process", *leaf, "--endpoint", endpoint, env=ONE_TRY)
    line = assert_promise(result)
    assert "\r" not in line


def test_a_planted_deep_json_cache_entry_is_ignored(
    leaf: list[str], emulator, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    flags = [*leaf, "--endpoint", emulator.url, "--cache", "--cache-dir", str(cache)]
    first = process_credentials(run_cli("credential-process", *flags))
    (entry,) = cache.glob("*.json")
    entry.write_text("[" * 5000)
    entry.chmod(0o600)
    for _ in range(2):  # the first run replaces the entry; the second reads the new one
        again = process_credentials(run_cli("credential-process", *flags))
    assert again["AccessKeyId"] != first["AccessKeyId"]
    assert entry.read_text().startswith('{"format":2')
