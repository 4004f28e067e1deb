"""``hwsigner emulator`` as a process and a server: start-up errors, stopping, malformed input,
the test hooks other tests drive it with, and its use as a library.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hwsigner.devpki import DevPki, new_key
from hwsigner.emulator import Received, TrustAnchors, running, verify_create_session
from hwsigner.errors import ServiceError
from hwsigner.identity import Identity
from hwsigner.keys.file import FileKey
from hwsigner.rolesanywhere import request_credentials
from hwsigner.settings import Settings

from .conftest import start_emulator, stop
from .helpers import PROFILE_ARN, ROLE_ARN, TRUST_ANCHOR_ARN, assert_one_line_error, run_cli
from .test_emulator_rules import Device, Emu, granted, refused, send, signed, with_header


@pytest.fixture(scope="module")
def emu(pki: DevPki) -> Iterator[Emu]:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    running_emulator = start_emulator(pki.root_cert, extra=("--now", now.isoformat()))
    yield Emu(running_emulator.url, now)
    stop(running_emulator.process)


@pytest.fixture(scope="module")
def device(pki: DevPki) -> Device:
    key = new_key("ec-p384")
    cert = pki.issue(key.public_key(), "server-test-device")
    return Device(Identity(cert, (pki.issuing[0],)), FileKey(key))


def hook(url: str, name: str, data: object | None = None) -> dict[str, object]:
    """GET (no data) or POST a test hook and read its JSON answer."""
    body = None if data is None else json.dumps(data).encode()
    with urllib.request.urlopen(f"{url}/_emulator/{name}", data=body, timeout=30) as answer:
        result = json.loads(answer.read())
    assert isinstance(result, dict)
    return result


@pytest.fixture
def fresh(emu: Emu) -> Emu:
    """The module's emulator with its counters, failures and settings reset."""
    hook(emu.url, "reset", {})
    return emu


def raw_exchange(
    url: str, data: bytes, *, half_close: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are and read one HTTP answer."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


# --- the process --------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_it_cleanly(pki: DevPki, signum: int) -> None:
    emulator = start_emulator(pki.root_cert)
    hook(emulator.url, "stats")
    emulator.process.send_signal(signum)
    out, err = emulator.process.communicate(timeout=30)
    assert emulator.process.returncode == 0, err
    assert out == "" and err == ""  # the URL line was read already; nothing else, no traceback


def test_the_url_is_the_first_line_even_with_debug(pki: DevPki) -> None:
    emulator = start_emulator(pki.root_cert, extra=("--debug",))
    try:
        assert hook(emulator.url, "stats")["createSession"] == 0
    finally:
        stop(emulator.process)


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda tmp, pki: tmp / "absent.pem", ("not found", "absent.pem")),
        (lambda tmp, pki: _write(tmp / "junk.pem", b"not a certificate"), ("junk.pem",)),
        (lambda tmp, pki: pki.issue_file(new_key("ec-p256").public_key(), "a-leaf"), ("not a CA",)),
    ],
    ids=["missing", "not a certificate", "not a CA"],
)
def test_a_bad_trust_anchor_is_one_line(tmp_path: Path, pki: DevPki, make, needles) -> None:
    result = run_cli("emulator", "--port", "0", "--trust-anchor", make(tmp_path, pki), timeout=60)
    assert_one_line_error(result, *needles)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("now", ["yesterday", "2024-13-01T00:00:00Z", "1720265950"])
def test_a_bad_now_is_one_line(pki: DevPki, now: str) -> None:
    result = run_cli("emulator", "--port", "0", "--trust-anchor", pki.root_cert, "--now", now)
    assert_one_line_error(result, "--now", now)


def test_a_busy_port_is_one_line(pki: DevPki) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("emulator", "--port", str(port), "--trust-anchor", pki.root_cert)
    assert_one_line_error(result, f"127.0.0.1:{port}", "--port")


# --- malformed input ----------------------------------------------------------------------------

POST = b"POST /sessions HTTP/1.1\r\nHost: x\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n\r\n"
HOOK = b"POST /_emulator/fail HTTP/1.1\r\n"
GARBAGE = {
    "binary request line": b"\x00\x01\x02\xff garbage\r\n\r\n",
    "two-word request line": b"POST /sessions\r\n\r\n",
    "HTTP/2.0": b"POST /sessions HTTP/2.0\r\n\r\n",
    "unknown method": b"BREW /sessions HTTP/1.1\r\nHost: x\r\n\r\n",
    "header without colon": POST + b"not a header\r\n\r\n",
    "huge Content-Length": POST + b"Content-Length: 99999999999999\r\n\r\n",
    "negative Content-Length": POST + b"Content-Length: -5\r\n\r\n",
    "two Content-Lengths": POST + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "length and chunked": POST + b"Content-Length: 5\r\n" + CHUNKED + b"0\r\n\r\n",
    "gzip encoding": POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "bad chunk size": POST + CHUNKED + b"zz\r\nab\r\n0\r\n\r\n",
    "chunk size with underscore": POST + CHUNKED + b"1_0\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n",
    "chunk without its CRLF": POST + CHUNKED + b"2\r\nabcd\r\n0\r\n\r\n",
    "chunks over 64 KiB": (
        POST
        + CHUNKED
        + b"8000\r\n"
        + b"a" * 0x8000
        + b"\r\n8001\r\n"
        + b"a" * 0x8001
        + b"\r\n0\r\n\r\n"
    ),
    "header line over 64 KiB": b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
    "too many headers": b"GET / HTTP/1.1\r\n" + b"X-H: 1\r\n" * 120 + b"\r\n",
    "request line over 64 KiB": b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
    "garbage Authorization": POST + b"Authorization: \xff\xfe junk\r\nContent-Length: 2\r\n\r\n{}",
    "empty Authorization parts": (
        POST + b"Authorization: AWS4-X509-RSA-SHA256 Credential=,,,\r\nContent-Length: 0\r\n\r\n"
    ),
    "bad hook JSON": HOOK + b"Content-Length: 5\r\n\r\n{fail",
    "hook JSON array": HOOK + b"Content-Length: 2\r\n\r\n[]",
    "hook status out of range": HOOK + b'Content-Length: 15\r\n\r\n{"status": 200}',
}


@pytest.mark.parametrize("name", GARBAGE)
def test_malformed_input_gets_a_4xx_and_the_server_keeps_serving(
    fresh: Emu, device: Device, name: str
) -> None:
    status, headers, body = raw_exchange(fresh.url, GARBAGE[name])
    assert 400 <= status < 500, (status, body)
    assert headers["x-amzn-errortype"]
    assert json.loads(body)["message"]
    granted(send(signed(fresh, device)))
    assert hook(fresh.url, "stats")["failedOnPurpose"] == 0


def test_a_body_shorter_than_its_length_is_refused(fresh: Emu, device: Device) -> None:
    data = b"POST /sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{}"
    status, headers, _ = raw_exchange(fresh.url, data, half_close=True)
    assert (status, headers["x-amzn-errortype"]) == (400, "ValidationException")
    granted(send(signed(fresh, device)))


@pytest.mark.parametrize("header", ["X-Amz-X509", "X-Amz-X509-Chain"])
@pytest.mark.parametrize("value", ["!!!not base64!!!", "QUJD", ""])
def test_a_certificate_header_that_is_not_a_certificate_is_refused(
    fresh: Emu, device: Device, header: str, value: str
) -> None:
    request = with_header(signed(fresh, device), header, value)
    refused(send(request), 403, "AccessDeniedException")


def test_a_repeated_date_header_is_refused(fresh: Emu, device: Device) -> None:
    request = signed(fresh, device)
    date = dict(request.headers)["X-Amz-Date"]
    address = urlsplit(fresh.url)
    conn = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    try:
        conn.putrequest(
            "POST", request.url[len(fresh.url) :], skip_host=True, skip_accept_encoding=True
        )
        for name, value in request.headers:
            conn.putheader(name, value)
        conn.putheader("X-Amz-Date", date)
        conn.putheader("Content-Length", str(len(request.body)))
        conn.endheaders(request.body)
        answer = conn.getresponse()
        assert answer.status == 403
        assert "X-Amz-Date" in json.loads(answer.read())["message"]
    finally:
        conn.close()


# --- test hooks ---------------------------------------------------------------------------------


def test_stats_count_what_was_answered(fresh: Emu, device: Device) -> None:
    granted(send(signed(fresh, device)))
    granted(send(signed(fresh, device, body=b'{"durationSeconds":900,"roleSessionName":"s-1"}')))
    refused(send(signed(fresh, device, body=b'{"durationSeconds":1}')), 400, "ValidationException")
    stats = hook(fresh.url, "stats")
    assert {k: stats[k] for k in ("createSession", "rejected", "failedOnPurpose")} == {
        "createSession": 2,
        "rejected": 1,
        "failedOnPurpose": 0,
    }
    last = stats["last"]
    assert isinstance(last, dict)
    assert last["durationSeconds"] == 900 and last["roleSessionName"] == "s-1"
    assert last["serialNumber"] == str(device.identity.certificate.serial_number)
    assert "secretAccessKey" not in json.dumps(stats) and "sessionToken" not in json.dumps(stats)


def test_fail_answers_the_next_calls_with_the_status(fresh: Emu, device: Device) -> None:
    hook(fresh.url, "fail", {"status": 503, "count": 2})
    for _ in range(2):
        refused(send(signed(fresh, device)), 503, "ServiceUnavailableException", "injected")
    granted(send(signed(fresh, device)))
    stats = hook(fresh.url, "stats")
    assert (stats["failedOnPurpose"], stats["createSession"]) == (2, 1)


def test_fail_for_ever_until_stopped_with_its_own_type(fresh: Emu, device: Device) -> None:
    hook(
        fresh.url,
        "fail",
        {
            "status": 429,
            "count": -1,
            "errorType": "ThrottlingException",
            "message": "Rate exceeded",
        },
    )
    for _ in range(3):
        refused(send(signed(fresh, device)), 429, "ThrottlingException", "Rate exceeded")
    assert hook(fresh.url, "stats")["createSession"] == 0  # the hooks themselves still answer
    hook(fresh.url, "fail", {"count": 0})
    granted(send(signed(fresh, device)))


def test_the_client_retries_through_injected_5xx(fresh: Emu, device: Device) -> None:
    hook(fresh.url, "fail", {"status": 500, "count": 2})
    params = Settings(
        trust_anchor_arn=TRUST_ANCHOR_ARN,
        profile_arn=PROFILE_ARN,
        role_arn=ROLE_ARN,
        endpoint=fresh.url,
    )
    pauses: list[float] = []
    creds = request_credentials(
        params, device.identity, device.key, env={}, clock=lambda: fresh.now, sleep=pauses.append
    )
    assert creds.expiration == fresh.now + timedelta(hours=1)
    assert len(pauses) == 2
    stats = hook(fresh.url, "stats")
    assert (stats["failedOnPurpose"], stats["createSession"]) == (2, 1)


def test_the_client_does_not_retry_an_injected_403(fresh: Emu, device: Device) -> None:
    hook(fresh.url, "fail", {"status": 403, "count": 5, "message": "Certificate revoked"})
    params = Settings(
        trust_anchor_arn=TRUST_ANCHOR_ARN,
        profile_arn=PROFILE_ARN,
        role_arn=ROLE_ARN,
        endpoint=fresh.url,
    )
    with pytest.raises(ServiceError, match="Certificate revoked") as caught:
        request_credentials(
            params,
            device.identity,
            device.key,
            env={},
            clock=lambda: fresh.now,
            sleep=lambda _: None,
        )
    assert (caught.value.status, caught.value.error_type) == (403, "AccessDeniedException")
    assert hook(fresh.url, "stats")["failedOnPurpose"] == 1


@pytest.mark.parametrize("seconds", [60, -60])
def test_settings_make_credentials_expire_early(fresh: Emu, device: Device, seconds: int) -> None:
    hook(fresh.url, "settings", {"expiresIn": seconds})
    entry = granted(send(signed(fresh, device)))["credentialSet"][0]  # type: ignore[index]
    expected = fresh.now + timedelta(seconds=seconds)
    assert entry["credentials"]["expiration"] == expected.strftime("%Y-%m-%dT%H:%M:%SZ")
    hook(fresh.url, "settings", {"expiresIn": None})
    entry = granted(send(signed(fresh, device)))["credentialSet"][0]  # type: ignore[index]
    assert entry["credentials"]["expiration"] != expected.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_unknown_hook_is_not_found(fresh: Emu) -> None:
    status, headers, _ = raw_exchange(fresh.url, b"GET /_emulator/nothing HTTP/1.1\r\n\r\n")
    assert (status, headers["x-amzn-errortype"]) == (404, "ResourceNotFoundException")


def test_parallel_clients_are_all_answered(fresh: Emu, device: Device) -> None:
    statuses: list[int] = []
    requests = [signed(fresh, device) for _ in range(16)]
    threads = [
        threading.Thread(target=lambda r=r: statuses.append(send(r).status)) for r in requests
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201] * 16
    assert hook(fresh.url, "stats")["createSession"] == 16


# --- as a library -------------------------------------------------------------------------------


def test_in_process_server_and_pure_verifier(pki: DevPki, device: Device) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    anchors = TrustAnchors.load([str(pki.root_cert)])
    with running(anchors, clock=lambda: now) as server:
        assert server.url.startswith("http://127.0.0.1:")
        request = signed(Emu(server.url, now), device)
        granted(send(request))
        assert server.emulator.stats()["createSession"] == 1
    target = request.url[len(server.url) :]
    received = Received("POST", target, request.headers, request.body)
    grant = verify_create_session(received, anchors, now)
    assert grant.certificate == device.identity.certificate
    assert grant.anchor == pki.root[0]
    assert (grant.region, grant.session.duration) == ("us-east-1", 3600)
    assert grant.session.role_arn == ROLE_ARN


def test_an_intermediate_may_be_the_trust_anchor(pki: DevPki, device: Device) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with running(TrustAnchors.load([str(pki.issuing_cert)]), clock=lambda: now) as server:
        bare = Device(Identity(device.identity.certificate), device.key)
        granted(send(signed(Emu(server.url, now), bare)))


def test_help_lists_the_flags() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hwsigner", "emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "--trust-anchor" in result.stdout and "--now" in result.stdout
