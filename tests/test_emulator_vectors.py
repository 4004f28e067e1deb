"""The emulator accepts the official helper's captured requests, sent raw over a socket, and
refuses them once any byte of their signed parts changes.

The captures (../shared/vectors/official-helper, third-party data read in place) are raw HTTP
with CRLF line ends; they carry ``Transfer-Encoding: chunked`` but show the body plain. They are
sent here either with ``Content-Length`` instead, or as a real chunked body.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from .conftest import RunningEmulator, start_emulator, stop
from .helpers import VECTORS

pytestmark = pytest.mark.skipif(
    not VECTORS.is_dir(),
    reason=(
        "third-party captures not present (../shared/vectors):"
        " the byte-for-byte check of the emulator against AWS's helper's live requests is"
        " skipped; the other emulator tests cover its rules"
    ),
)


@dataclass(frozen=True)
class Capture:
    file: str
    anchor: str
    now: str  # the emulator's clock: a few seconds after the capture's X-Amz-Date
    serial: str


CAPTURES = {
    "rsa": Capture("rsa-2048.request.txt", "root-ca.crt", "2024-07-06T11:39:10Z", "21"),
    "p384": Capture("ecdsa-p384.request.txt", "root-ca-ecc.crt", "2024-07-06T14:30:10Z", "3"),
}


def read_capture(capture: Capture) -> tuple[bytes, bytes]:
    """The head (request line and headers, no ``Transfer-Encoding``) and the body."""
    head, body = (VECTORS / capture.file).read_bytes().split(b"\r\n\r\n", 1)
    lines = [line for line in head.split(b"\r\n") if line != b"Transfer-Encoding: chunked"]
    assert len(lines) == len(head.split(b"\r\n")) - 1
    return b"\r\n".join(lines), body


def with_length(head: bytes, body: bytes) -> bytes:
    return head + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def chunked(head: bytes, body: bytes, sizes: tuple[int, ...]) -> bytes:
    """``body`` in chunks of ``sizes`` (the rest in the last one), as RFC 9112 frames them."""
    out, rest = [head + b"\r\nTransfer-Encoding: chunked\r\n\r\n"], body
    for size in (*sizes, len(body)):
        piece, rest = rest[:size], rest[size:]
        if piece:
            out.append(b"%X\r\n%s\r\n" % (len(piece), piece))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def exchange(url: str, *messages: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Send each message on one connection (keep-alive), reading each answer before the next."""
    address = urlsplit(url)
    answers = []
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        for message in messages:
            sock.sendall(message)
            response = http.client.HTTPResponse(sock, method="POST")
            response.begin()
            headers = {k.lower(): v for k, v in response.getheaders()}
            answers.append((response.status, headers, response.read()))
    return answers


@pytest.fixture(scope="module")
def emulators() -> Iterator[dict[str, RunningEmulator]]:
    """One emulator per capture: its CA as the trust anchor, its clock at the capture's time."""
    running = {
        name: start_emulator(VECTORS / capture.anchor, extra=("--now", capture.now))
        for name, capture in CAPTURES.items()
    }
    yield running
    for emulator in running.values():
        stop(emulator.process)


def assert_granted(answer: tuple[int, dict[str, str], bytes]) -> dict[str, object]:
    status, _, body = answer
    assert status == 201, body
    data = json.loads(body)
    assert data["credentialSet"][0]["credentials"]["accessKeyId"].startswith("ASIA")
    return data


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_is_accepted_with_content_length(emulators, name: str) -> None:
    head, body = read_capture(CAPTURES[name])
    (answer,) = exchange(emulators[name].url, with_length(head, body))
    entry = assert_granted(answer)["credentialSet"][0]  # type: ignore[index]
    assert entry["roleArn"] == "arn:aws:iam::291738886548:role/rolesanywhere1"
    expected = {"rsa": "2024-07-06T12:39:10Z", "p384": "2024-07-06T15:30:10Z"}[name]
    assert entry["credentials"]["expiration"] == expected


@pytest.mark.parametrize("sizes", [(), (7,), (1, 1, 5)], ids=["one chunk", "two", "four"])
@pytest.mark.parametrize("name", CAPTURES)
def test_capture_is_accepted_with_a_chunked_body(emulators, name: str, sizes) -> None:
    head, body = read_capture(CAPTURES[name])
    (answer,) = exchange(emulators[name].url, chunked(head, body, sizes))
    assert_granted(answer)


@pytest.mark.parametrize("name", CAPTURES)
def test_captures_replayed_on_one_connection_are_each_answered(emulators, name: str) -> None:
    head, body = read_capture(CAPTURES[name])
    answers = exchange(emulators[name].url, chunked(head, body, (5,)), with_length(head, body))
    first, second = (assert_granted(answer) for answer in answers)
    assert first != second  # fresh credentials each time


def change_digit(data: bytes, marker: bytes, back: int = 1) -> bytes:
    """Change the digit ``back`` characters before the end of the line that ``marker`` starts."""
    start = data.index(marker) + len(marker)
    at = data.index(b"\r\n", start) - back
    digit = data[at : at + 1]
    assert digit.isdigit() or digit in b"abcdef", digit
    return data[:at] + (b"0" if digit != b"0" else b"1") + data[at + 1 :]


def change_x509(data: bytes) -> bytes:
    """Change one base64 character in the middle of the X-Amz-X509 value."""
    start = data.index(b"X-Amz-X509: ") + len(b"X-Amz-X509: ")
    middle = start + (data.index(b"\r\n", start) - start) // 2
    char = data[middle : middle + 1]
    return data[:middle] + (b"A" if char != b"A" else b"B") + data[middle + 1 :]


Mutation = Callable[[bytes, Capture], bytes]


def replacing(old: bytes, new: bytes) -> Mutation:
    def mutate(head: bytes, capture: Capture) -> bytes:
        assert old in head, old
        return head.replace(old, new)

    return mutate


def mutate_serial(head: bytes, capture: Capture) -> bytes:
    """The serial is not part of the string to sign: only the serial check catches this."""
    return replacing(
        b"Credential=%s/" % capture.serial.encode(), b"Credential=%d/" % (int(capture.serial) + 1)
    )(head, capture)


def mutate_scope_date(head: bytes, capture: Capture) -> bytes:
    serial = capture.serial.encode()
    return replacing(b"Credential=%s/20240706/" % serial, b"Credential=%s/20240707/" % serial)(
        head, capture
    )


MUTATIONS: dict[str, Mutation] = {
    "query: one character of the role ARN": replacing(b"rolesanywhere1&", b"rolesanywhere2&"),
    "query: a parameter added": replacing(b" HTTP/1.1", b"&x=1 HTTP/1.1"),
    "path": replacing(b"POST /sessions?", b"POST /Sessions?"),
    "method": replacing(b"POST /sessions?", b"PUT /sessions?"),
    "date: one second earlier or later": lambda head, _: change_digit(head, b"X-Amz-Date: ", 2),
    "X-Amz-X509": lambda head, _: change_x509(head),
    "signature": lambda head, _: change_digit(head, b"Authorization: "),
    "signed headers: content-type dropped": replacing(
        b"SignedHeaders=content-type;host;", b"SignedHeaders=host;"
    ),
    "signed headers: user-agent added": replacing(
        b"SignedHeaders=content-type;host;", b"SignedHeaders=content-type;host;user-agent;"
    ),
    "serial": mutate_serial,
    "scope region": replacing(b"/us-east-2/rolesanywhere/", b"/us-west-2/rolesanywhere/"),
    "scope date": mutate_scope_date,
    "algorithm": replacing(b"Authorization: AWS4-X509-", b"Authorization: AWS4-X509-X"),
    "host": replacing(b"Host: 127.0.0.1:8080", b"Host: 127.0.0.1:8081"),
    "content-type": replacing(b"Content-Type: application/json", b"Content-Type: text/json"),
}


@pytest.mark.parametrize("mutation", [*MUTATIONS, "body"])
@pytest.mark.parametrize("name", CAPTURES)
def test_a_changed_signed_byte_is_refused(emulators, name: str, mutation: str) -> None:
    capture = CAPTURES[name]
    head, body = read_capture(capture)
    if mutation == "body":
        body = body.replace(b"3600", b"3601")
    else:
        changed = MUTATIONS[mutation](head, capture)
        assert changed != head
        head = changed
    (answer,) = exchange(emulators[name].url, with_length(head, body))
    status, headers, raw = answer
    expected = {404} if mutation in ("path", "method") else {400, 403}
    assert status in expected, (status, raw)
    assert headers["x-amzn-errortype"] in (
        "AccessDeniedException",
        "ValidationException",
        "ResourceNotFoundException",
    )
    assert json.loads(raw)["message"]


@pytest.mark.parametrize("name", CAPTURES)
def test_the_capture_is_refused_when_the_clock_is_past_the_skew(name: str) -> None:
    capture = CAPTURES[name]
    late = capture.now.replace(":39:", ":49:").replace(":30:", ":40:")
    emulator = start_emulator(VECTORS / capture.anchor, extra=("--now", late))
    try:
        head, body = read_capture(capture)
        ((status, headers, raw),) = exchange(emulator.url, with_length(head, body))
    finally:
        stop(emulator.process)
    assert status == 403
    assert headers["x-amzn-errortype"] == "AccessDeniedException"
    assert "Signature expired" in json.loads(raw)["message"]


def test_the_capture_is_refused_by_the_other_trust_anchor() -> None:
    emulator = start_emulator(VECTORS / "root-ca-ecc.crt", extra=("--now", CAPTURES["rsa"].now))
    try:
        head, body = read_capture(CAPTURES["rsa"])
        ((status, headers, raw),) = exchange(emulator.url, with_length(head, body))
    finally:
        stop(emulator.process)
    assert (status, headers["x-amzn-errortype"]) == (403, "AccessDeniedException")
    assert json.loads(raw)["message"] == "Untrusted signing certificate"
