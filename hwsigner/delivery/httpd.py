"""A small HTTP/1.1 server on asyncio for short answers: one thread serves every connection.

    >>> server = HttpServer([(listening_socket, route)])  # doctest: +SKIP
    >>> server.serve_forever()  # doctest: +SKIP

A route takes a ``Request`` and gives an ``Answer``, or an awaitable of one when it must wait
(a refresh, on a thread): the common answer never leaves the event loop. The rules, as
``http.server`` had them: keep-alive for HTTP/1.1 unless ``Connection: close`` (HTTP/1.0 only
with ``keep-alive``); answers in request order; a body of up to 64 KiB (``Content-Length``) is
dropped, any other body closes the connection after the answer; a head over 64 KiB or with
over 100 headers gets 431, a malformed one 400, an unknown HTTP version 505, then the
connection closes. A connection that takes over ``IDLE_SECONDS`` to send a complete request is
closed (dripping bytes cannot hold it). A client that goes away costs one debug line at most;
each request one debug line (peer, request line, status; never headers, where tokens travel).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from .._safe import one_line

log = logging.getLogger("hwsigner")

IDLE_SECONDS = 30.0
MAX_HEAD = 65536
MAX_HEADERS = 100
MAX_BODY = 65536


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request: header names in lower case, values as sent (Latin-1)."""

    method: str
    path: str  # without the query
    headers: dict[str, str]
    peer: str


@dataclass(frozen=True, slots=True)
class Answer:
    """A status, a body and any extra header lines, encoded (``b"Name: value\\r\\n"``)."""

    status: int
    body: bytes
    headers: bytes = b"Content-Type: text/plain\r\n"


def text(status: int, body: str, headers: bytes = b"Content-Type: text/plain\r\n") -> Answer:
    return Answer(status, body.encode(), headers)


Route = Callable[[Request], "Answer | Awaitable[Answer]"]
STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\nServer: hwsigner\r\n".encode()
    for status in HTTPStatus
}


@functools.lru_cache(maxsize=2)
def date_line(second: int) -> bytes:
    """The ``Date`` header line of a second (``date_line(int(time.time()))``)."""
    return time.strftime("Date: %a, %d %b %Y %H:%M:%S GMT\r\n", time.gmtime(second)).encode()


class Connection(asyncio.Protocol):
    """One client connection: parses requests from the buffer and answers them in order."""

    def __init__(self, route: Route, hop_limit: int | None, open_: set[Connection]) -> None:
        self.route, self.hop_limit, self.open = route, hop_limit, open_
        self.buffer = bytearray()
        self.skip = 0  # body bytes still to drop
        self.busy = self.closing = False  # busy: waiting for an awaitable answer
        self.peer = "-"
        self.transport: asyncio.Transport | None = None
        self.last = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.open.add(self)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else "local"
        sock = transport.get_extra_info("socket")
        if self.hop_limit is not None and sock is not None:
            set_hop_limit(sock, self.hop_limit)
        loop = asyncio.get_running_loop()
        self.last = loop.time()
        loop.call_later(IDLE_SECONDS, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.open.discard(self)
        if exc is not None:
            log.debug("client %s went away: %s", self.peer, one_line(str(exc)))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._process()

    def eof_received(self) -> bool:
        """Busy: answer what was asked, then close; else asyncio closes after the writes."""
        self.closing = self.closing or self.busy
        return self.busy

    def _check_idle(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        left = self.last + IDLE_SECONDS - asyncio.get_running_loop().time()
        if left > 0 or self.busy:
            asyncio.get_running_loop().call_later(max(left, 1.0), self._check_idle)
            return
        log.debug("client %s sent no complete request for %gs: closing", self.peer, IDLE_SECONDS)
        self.transport.close()

    def _process(self) -> None:
        while not self.busy and not self.closing:
            if self.skip:
                dropped = min(self.skip, len(self.buffer))
                del self.buffer[:dropped]
                self.skip -= dropped
                if self.skip:
                    return
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0 and len(self.buffer) <= MAX_HEAD:
                return  # more to come
            if end < 0 or end > MAX_HEAD:
                self._finish(None, text(431, "request header too large"), close=True)
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            del self.buffer[: end + 4]
            self.last = asyncio.get_running_loop().time()
            self._handle(head)

    def _handle(self, head: str) -> None:
        line = head.split("\r\n", 1)[0]
        parsed = parse(head, self.peer)
        if isinstance(parsed, Answer):
            self._finish(line, parsed, close=True)
            return
        request, close, self.skip = parsed
        answer: Answer | Awaitable[Answer]
        try:
            answer = self.route(request)
        except Exception as exc:  # a bug in a route must cost one answer, not the server
            log.error("answering 500: %s: %s", type(exc).__name__, one_line(str(exc)))
            answer = text(500, "internal error")
        if isinstance(answer, Answer):
            self._finish(line, answer, close=close)
        else:
            self._wait(line, answer, close)

    def _wait(self, line: str, pending: Awaitable[Answer], close: bool) -> None:
        assert self.transport is not None
        self.busy = True
        self.transport.pause_reading()

        def done(task: asyncio.Future[Answer]) -> None:
            self.busy = False
            error = None if task.cancelled() else task.exception()
            if task.cancelled() or error is not None:
                log.error("answering 500: %s", one_line(repr(error)))
                answer = text(500, "internal error")
            else:
                answer = task.result()
            self._finish(line, answer, close=close or self.closing)
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()
                self._process()

        asyncio.ensure_future(pending).add_done_callback(done)

    def _finish(self, line: str | None, answer: Answer, *, close: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if line is not None and log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %d", self.peer, one_line(line), answer.status)
        body = answer.body
        transport.write(
            b"".join((STATUS_LINES[answer.status], date_line(int(time.time())), answer.headers,
                      b"Content-Length: %d\r\n" % len(body),
                      b"Connection: close\r\n\r\n" if close else b"\r\n", body))
        )  # fmt: skip
        if close:
            self.closing = True
            transport.close()


def parse(head: str, peer: str) -> tuple[Request, bool, int] | Answer:
    """(the request, whether to close after it, body bytes to drop), or the error answer."""
    lines = head.split("\r\n")
    words = lines[0].split()
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        return text(400, "bad request line")
    method, target, version = words
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        known = version[5:].replace(".", "", 1).isdigit()
        return text(505, "unsupported version") if known else text(400, "bad version")
    if len(lines) - 1 > MAX_HEADERS:
        return text(431, "too many headers")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or "\n" in line:
            return text(400, "bad header")
        headers.setdefault(name.lower(), value.strip(" \t"))  # the first of repeated names
    connection = headers.get("connection", "").lower()
    close = "close" in connection if version == "HTTP/1.1" else "keep-alive" not in connection
    length, skip = headers.get("content-length", "").strip(), 0
    if length.isascii() and length.isdigit() and int(length) <= MAX_BODY:
        skip = int(length)
    elif length or "transfer-encoding" in headers:
        close = True  # a body we do not read: nothing after it can be trusted
    return Request(method, target.split("?", 1)[0], headers, peer), close, skip


def set_hop_limit(sock: socket.socket, hops: int) -> None:
    """The IP TTL (IPv4) or unicast hop limit (IPv6) of the packets the socket sends."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, hops)
    elif sock.family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, hops)


class HttpServer:
    """Serves each listening socket with its route on one event loop, in the thread that calls
    ``serve_forever``; ``shutdown`` (from another thread) stops it, ``server_close`` closes."""

    def __init__(
        self, listeners: list[tuple[socket.socket, Route]], *, hop_limit: int | None = None
    ) -> None:
        self.listeners = listeners
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(_one_line_errors)
        self._done = threading.Event()
        self._running = self._stopping = False
        self._open: set[Connection] = set()
        self._servers: list[asyncio.AbstractServer] = []
        for sock, route in listeners:
            hops = hop_limit if sock.family != socket.AF_UNIX else None
            factory = functools.partial(Connection, route, hops, self._open)
            serving = self.loop.create_server(factory, sock=sock)  # accepts once the loop runs
            self._servers.append(self.loop.run_until_complete(serving))

    def serve_forever(self) -> None:
        self._running = True  # then _stopping: see shutdown
        if self._stopping:
            self._done.set()
            return
        try:
            self.loop.run_forever()
        finally:
            for server in self._servers:
                server.close()
            for connection in list(self._open):
                if connection.transport is not None:
                    connection.transport.abort()
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            for _ in range(2):  # connection_lost, then the cancellations
                self.loop.call_soon(self.loop.stop)
                self.loop.run_forever()
            self._done.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` and wait until it has (at once if it never ran)."""
        self._stopping = True  # then _running: one of the two threads sees the other's flag
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self._running:
            self._done.wait()

    def server_close(self) -> None:
        for server in self._servers:
            server.close()
        for sock, _ in self.listeners:
            sock.close()
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()


def _one_line_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    error = context.get("exception")
    level = logging.DEBUG if isinstance(error, OSError) else logging.ERROR  # a client went away
    log.log(level, "server error: %s", one_line(repr(error) if error else context["message"]))


__all__ = ["Answer", "HttpServer", "Request", "Route", "set_hop_limit", "text"]
