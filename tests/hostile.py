"""A hostile CreateSession endpoint on loopback, with named behaviours.

    >>> with HostileServer("deep-json-403") as server:                # doctest: +SKIP
    ...     run_cli("credential-process", "--endpoint", server.url, ...)

Each behaviour is what a compromised or broken endpoint (or one that something on the path
impersonates, when TLS checks are off) can answer to a CreateSession request. The server reads
the request first, then answers as the behaviour says; ``raw`` answers with given bytes.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

# What an injected secret looks like: a new section and a command for the credentials file.
INJECTED = "abc\n[default]\ncredential_process = /bin/sh -c pwned"
SECRET = "hostileSECRETvalue0000"
ESCAPES = "\x1b[31m\x1b]0;pwned\x07\r\nsecond line\x9b2J"


def credentials_body(
    *,
    key_id: str = "ASIAHOSTILEEXAMPLE00",
    secret: str = SECRET,
    token: str = "hostileTOKENvalue0000",  # noqa: S107 - a test value
    expiration: datetime | None = None,
) -> bytes:
    moment = expiration or datetime.now(timezone.utc) + timedelta(hours=1)
    creds = {
        "accessKeyId": key_id,
        "secretAccessKey": secret,
        "sessionToken": token,
        "expiration": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return json.dumps({"credentialSet": [{"credentials": creds}]}).encode()


def answer(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers, "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def _deep(opening: str, depth: int = 5000) -> bytes:
    return (opening * depth).encode()


# name -> the bytes answered (or a callable that handles the socket itself)
CANNED: dict[str, bytes] = {
    "ok": answer("201 Created", credentials_body()),
    "deep-json-201": answer("201 Created", _deep("[")),
    "deep-json-403": answer("403 Forbidden", b'{"message":' + _deep("[") + b"}"),
    "injection-secret": answer("201 Created", credentials_body(secret=INJECTED)),
    "injection-token": answer("201 Created", credentials_body(token="tok\r\nen")),
    "injection-key-id": answer("201 Created", credentials_body(key_id="ASIA$(reboot)0000000")),
    "expired": answer(
        "201 Created",
        credentials_body(expiration=datetime.now(timezone.utc) - timedelta(minutes=1)),
    ),
    "escape-codes": answer(
        "403 Forbidden",
        json.dumps({"message": f"denied {ESCAPES}"}).encode(),
        f"x-amzn-ErrorType: AccessDeniedException{ESCAPES[:10]}",
    ),
    "bad-status-line": b"HTTP/1.1 2\x1b[31m01 Created\r\ninjected: header\r\n\r\n",
    "bad-chunking": b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"-5\r\nabc\r\n0\r\n\r\n",
    "not-json": answer("201 Created", b"<html>hello</html>"),
}


class HostileServer:
    """A one-answer-per-connection TCP server; ``behaviour`` names what it answers."""

    def __init__(self, behaviour: str = "ok", *, raw: bytes | None = None, drip: float = 0.2):
        self.behaviour = behaviour
        self.raw = raw
        self.drip = drip
        self.requests = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                _read_request(conn)
                self.requests += 1
                self._behave(conn)
            except OSError:
                pass

    def _behave(self, conn: socket.socket) -> None:
        handlers: dict[str, Callable[[socket.socket], None]] = {
            "drip": self._drip,
            "reset": _reset,
            "huge-body": self._huge,
            "silence": self._silence,
            "late-body": self._late_body,
        }
        if self.raw is not None:
            conn.sendall(self.raw)
        elif self.behaviour in handlers:
            handlers[self.behaviour](conn)
        else:
            conn.sendall(CANNED[self.behaviour])

    def _drip(self, conn: socket.socket) -> None:
        """A good answer, one byte at a time: each read is quick, the whole never ends."""
        for byte in CANNED["ok"]:
            if self._stop.wait(self.drip):
                return
            conn.sendall(bytes([byte]))

    def _huge(self, conn: socket.socket) -> None:
        """A 201 that claims 1 GiB and sends zeros until the client goes away."""
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 1073741824\r\n\r\n")
        block = b"[" * 65536
        for _ in range(16384):
            if self._stop.is_set():
                return
            conn.sendall(block)

    def _late_body(self, conn: socket.socket) -> None:
        """A good answer whose body comes in a second packet, after ``Connection: close``."""
        head, _, body = CANNED["ok"].partition(b"\r\n\r\n")
        conn.sendall(head + b"\r\nConnection: close\r\n\r\n")
        self._stop.wait(0.3)
        conn.sendall(body)

    def _silence(self, conn: socket.socket) -> None:
        self._stop.wait(60)


def _reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    deadline = time.monotonic() + 10
    while len(body) < length and time.monotonic() < deadline:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return data
