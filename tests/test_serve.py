"""``hwsigner serve`` as a subprocess: the SDKs' instance-metadata and container providers,
the IMDSv2 rules, many clients, a failing service, and what it prints."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest

from hwsigner.credentials import parse_time

from .conftest import RunningEmulator
from .delivery import (
    create_sessions,
    emulator_call,
    expire_in,
    fail_service,
    heal_service,
    isolate_aws,
)
from .helpers import assert_one_line_error, run_cli

CREDENTIALS = "/latest/meta-data/iam/security-credentials"
ROLE = "hwsigner-test"
AUTH_TOKEN = "container-token-0123456789abcdef"


class Server:
    """``hwsigner serve --port 0`` in the background; stderr is collected as it comes."""

    def __init__(self, flags: list[str], *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hwsigner", "serve", *flags, "--port", "0", *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None and self.process.stderr is not None
        self.errors: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        first = self.process.stdout.readline()
        if not first.startswith("export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:"):
            self.process.kill()
            self._reader.join(10)
            raise AssertionError(f"serve did not start: {first!r} {''.join(self.errors)}")
        self.printed = [first]
        if "--auth-token-file" in extra:
            self.printed.append(self.process.stdout.readline())
        self.url = first.split("=", 1)[1].strip().rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.errors.append(line)

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        """Stop it; its exit status and everything it printed."""
        self.process.send_signal(signum)
        self.process.wait(timeout=30)  # not communicate(): the reader thread owns stderr
        assert self.process.stdout is not None and self.process.stderr is not None
        with self.process.stdout:
            out = self.process.stdout.read()
        self._reader.join(10)
        self.process.stderr.close()
        return self.process.returncode, "".join(self.printed) + out + "".join(self.errors)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, dict(answer.getheaders()), answer.read().decode()
        finally:
            conn.close()

    def token(self, ttl: str = "60") -> str:
        status, _, body = self.request(
            "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": ttl}
        )
        assert status == 200, body
        return body

    def credentials(self, token: str) -> tuple[int, str]:
        status, _, body = self.request(
            "GET", f"{CREDENTIALS}/{ROLE}", {"X-aws-ec2-metadata-token": token}
        )
        return status, body


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(AUTH_TOKEN)  # as docs/delivery.md makes it: no newline
    return path


@pytest.fixture
def server(flags: list[str], token_file: Path) -> Iterator[Server]:
    running = Server(flags, "--auth-token-file", str(token_file))
    yield running
    if running.process.poll() is None:
        running.stop()


def issued_key(emulator: RunningEmulator) -> str:
    return str(emulator_call(emulator.url, "GET", "stats")["last"]["accessKeyId"])


def test_prints_the_export_lines_with_the_real_port(server: Server) -> None:
    assert server.port > 0
    assert server.printed == [
        f"export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:{server.port}/\n",
        f"export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:{server.port}/credentials\n",
    ]


def test_boto3_instance_metadata_provider(
    server: Server, own_emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", server.url + "/")
    found = boto3.Session().get_credentials()
    assert found.method == "iam-role"
    frozen = found.get_frozen_credentials()
    assert frozen.access_key == issued_key(own_emulator)
    assert frozen.secret_key and frozen.token


def test_boto3_container_provider(
    server: Server, own_emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url + "/credentials")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", AUTH_TOKEN)
    found = boto3.Session().get_credentials()
    assert found.method == "container-role"
    frozen = found.get_frozen_credentials()
    assert frozen.access_key == issued_key(own_emulator)
    assert frozen.secret_key and frozen.token


def test_container_endpoint_needs_the_token(server: Server) -> None:
    assert server.request("GET", "/credentials")[0] == 401
    assert server.request("GET", "/credentials", {"Authorization": "wrong"})[0] == 401
    status, _, body = server.request("GET", "/credentials", {"Authorization": AUTH_TOKEN})
    assert status == 200
    data = json.loads(body)
    assert set(data) >= {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}


def test_container_endpoint_is_off_without_a_token_file(flags: list[str]) -> None:
    running = Server(flags)
    try:
        assert len(running.printed) == 1
        assert running.request("GET", "/credentials", {"Authorization": ""})[0] == 404
    finally:
        running.stop()


def test_imdsv2_token_rules(server: Server) -> None:
    put = "/latest/api/token"
    ttl = "X-aws-ec2-metadata-token-ttl-seconds"
    assert server.request("PUT", put, {ttl: "0"})[0] == 400
    assert server.request("PUT", put, {ttl: "21601"})[0] == 400
    assert server.request("PUT", put, {ttl: "ten"})[0] == 400
    assert server.request("PUT", put, {"X-Forwarded-For": "203.0.113.9"})[0] == 400
    assert server.request("GET", put)[0] == 405
    status, headers, token = server.request("PUT", put)
    assert status == 200 and len(token) >= 32
    assert headers[ttl] == "21600"
    assert server.request("PUT", put + "/", {ttl: "1"})[0] == 200


def test_imdsv2_credential_rules(server: Server) -> None:
    token = server.token()
    auth = {"X-aws-ec2-metadata-token": token}
    for path in (CREDENTIALS, CREDENTIALS + "/", f"{CREDENTIALS}/{ROLE}", f"{CREDENTIALS}/{ROLE}/"):
        assert server.request("GET", path)[0] == 401, path
        forged = {"X-aws-ec2-metadata-token": token[:-4] + "AAAA"}
        assert server.request("GET", path, forged)[0] == 401, path
    for path in (CREDENTIALS, CREDENTIALS + "/"):
        status, _, body = server.request("GET", path, auth)
        assert (status, body) == (200, ROLE)
    for path in (f"{CREDENTIALS}/{ROLE}", f"{CREDENTIALS}/{ROLE}/"):
        status, headers, body = server.request("GET", path, auth)
        assert status == 200
        data = json.loads(body)
        assert list(data) == ["Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey",
                              "Token", "Expiration"]  # fmt: skip
        assert data["Code"] == "Success" and data["Type"] == "AWS-HMAC"
        assert parse_time(data["Expiration"]) > datetime.now(timezone.utc)
        assert 0 < int(headers["X-aws-ec2-metadata-token-ttl-seconds"]) <= 60
    assert server.request("GET", f"{CREDENTIALS}/other-role", auth)[0] == 404
    assert server.request("GET", f"{CREDENTIALS}/other-role")[0] == 401
    assert server.request("GET", "/latest/meta-data/", auth)[0] == 404


def test_an_expired_token_is_refused(server: Server) -> None:
    token = server.token("1")
    time.sleep(1.5)
    assert server.credentials(token)[0] == 401


def test_200_concurrent_reads_cost_at_most_one_create_session(
    server: Server, own_emulator: RunningEmulator
) -> None:
    before = create_sessions(own_emulator.url)

    def read(_: int) -> tuple[int, str]:
        status, body = server.credentials(server.token())
        return status, json.loads(body)["AccessKeyId"] if status == 200 else body

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(read, range(200)))
    assert [status for status, _ in results] == [200] * 200
    assert len({key for _, key in results}) == 1
    assert create_sessions(own_emulator.url) - before <= 1


def test_keeps_the_last_good_credentials_then_answers_500(
    pki, own_emulator: RunningEmulator, flags: list[str]
) -> None:
    # Credentials that live 8 seconds: serve tries to refresh them when 4 remain, and hands
    # them out while more than 2 remain.
    expire_in(own_emulator.url, 8)
    running = Server(flags)
    try:
        fail_service(own_emulator.url)  # from here on, only the first credentials exist
        token = running.token()
        status, body = running.credentials(token)
        assert status == 200
        good = json.loads(body)
        deadline = time.monotonic() + 60
        while True:
            status, body = running.credentials(token)
            if status != 200:
                break
            data = json.loads(body)
            assert data["AccessKeyId"] == good["AccessKeyId"]
            assert data["SecretAccessKey"] and data["Token"]
            assert parse_time(data["Expiration"]) > datetime.now(timezone.utc)
            assert time.monotonic() < deadline, "never stopped serving the old credentials"
            time.sleep(0.2)
        assert status == 500
        assert "AccessKeyId" not in body
        assert emulator_call(own_emulator.url, "GET", "stats")["failedOnPurpose"] >= 1
        heal_service(own_emulator.url)
        expire_in(own_emulator.url, None)
        deadline = time.monotonic() + 60
        while (status := running.credentials(token)[0]) != 200:
            assert time.monotonic() < deadline, "did not recover"
            time.sleep(0.2)
    finally:
        code, output = running.stop()
    assert code == 0
    assert "refreshing credentials failed" in output
    assert good["SecretAccessKey"] not in output and good["Token"] not in output


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_and_never_prints_secrets_or_tokens(server: Server, signum: int) -> None:
    token = server.token()
    _, body = server.credentials(token)
    imds = json.loads(body)
    _, _, body = server.request("GET", "/credentials", {"Authorization": AUTH_TOKEN})
    container = json.loads(body)
    code, output = server.stop(signum)
    assert code == 0, output
    assert "Traceback" not in output
    for secret in (token, AUTH_TOKEN, imds["SecretAccessKey"], imds["Token"],
                   container["SecretAccessKey"], container["Token"]):  # fmt: skip
        assert secret not in output


def test_debug_output_holds_no_secrets_either(flags: list[str], token_file: Path) -> None:
    running = Server([*flags, "--debug"], "--auth-token-file", str(token_file))
    try:
        token = running.token()
        _, body = running.credentials(token)
        running.request("GET", "/credentials", {"Authorization": AUTH_TOKEN})
    finally:
        code, output = running.stop()
    data = json.loads(body)
    assert code == 0
    assert "GET /latest/meta-data" in output  # it did log the requests
    for secret in (token, AUTH_TOKEN, data["SecretAccessKey"], data["Token"]):
        assert secret not in output


def test_startup_mistakes_are_one_line(
    flags: list[str], own_emulator: RunningEmulator, tmp_path: Path
) -> None:
    assert_one_line_error(run_cli("serve", *flags, "--hop-limit", "0"), "--hop-limit")
    assert_one_line_error(run_cli("serve", *flags, "--port", "70000"), "--port")
    missing = tmp_path / "missing"
    assert_one_line_error(run_cli("serve", *flags, "--auth-token-file", str(missing)), "token file")
    fail_service(own_emulator.url, status=403)
    assert_one_line_error(run_cli("serve", *flags, "--port", "0"), "AccessDenied")


def test_a_busy_port_is_one_line(server: Server, flags: list[str]) -> None:
    result = run_cli("serve", *flags, "--port", str(server.port))
    assert_one_line_error(result, "cannot listen", str(server.port))
