"""The emulator over HTTP on 127.0.0.1: in-process with ``running``, or ``hwsigner emulator``.

    >>> import json, tempfile, urllib.request
    >>> from hwsigner.devpki import DevPki
    >>> from hwsigner.emulator import TrustAnchors, running
    >>> pki = DevPki.create(tempfile.mkdtemp())
    >>> with running(TrustAnchors.load([str(pki.root_cert)])) as server:
    ...     with urllib.request.urlopen(server.url + "/_emulator/stats") as answer:
    ...         json.load(answer)["createSession"]      # CreateSession calls answered
    0

Bodies come with ``Content-Length`` or ``Transfer-Encoding: chunked`` (AWS's helper sends
chunked bodies), at most 64 KiB. Malformed input gets a JSON 4xx in AWS's error form and the
connection is closed; the server keeps serving.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..errors import ConfigError
from .app import Emulator, Reply, utcnow
from .certs import TrustAnchors
from .crl import Revocations
from .model import Model
from .params import Rejection, bad_request, error_type_for
from .verify import Received

log = logging.getLogger("hwsigner")

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,8}")


class EmulatorServer(ThreadingHTTPServer):
    """A threading HTTP server bound to loopback that hands requests to an ``Emulator``."""

    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not delay a shutdown
    request_queue_size = 64

    def __init__(self, emulator: Emulator, port: int = 0) -> None:
        self.emulator = emulator
        super().__init__((HOST, port), Handler)

    @classmethod
    def bind(cls, emulator: Emulator, port: int = 0) -> EmulatorServer:
        if not 0 <= port <= 65535:
            raise ConfigError(f"--port {port} is not a port number", hint="use 0 to 65535")
        try:
            return cls(emulator, port)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {HOST}:{port}: {exc.strerror or exc}",
                hint="choose another --port, or 0 for any free port",
            ) from None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("connection from %s failed", client_address, exc_info=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive clients would wait 40 ms for each answer
    server_version = "hwsigner-emulator"
    timeout = 30
    server: EmulatorServer

    def version_string(self) -> str:
        return self.server_version

    def do_POST(self) -> None:
        self._serve()

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_POST

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except Rejection as rejection:
            self.close_connection = True
            self._send(Reply.error(rejection))
            return
        headers = tuple(self.headers.items())
        received = Received(self.command, self.path, headers, body)
        try:
            reply = self.server.emulator.handle(received)
        except Exception:  # a bug here must not leave the client waiting without an answer
            log.exception("internal error answering %s %s", self.command, self.path[:128])
            self.close_connection = True
            reply = Reply.error(Rejection(500, "InternalServerException", "Internal error"))
        self._send(reply)

    def _read_body(self) -> bytes:
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encodings:
            if lengths:
                raise bad_request("Send either Content-Length or Transfer-Encoding, not both")
            if [value.strip().lower() for value in encodings] != ["chunked"]:
                raise bad_request("The only Transfer-Encoding accepted is chunked")
            return self._read_chunked()
        if not lengths:
            return b""
        if len(lengths) > 1 or not lengths[0].strip().isdigit():
            raise bad_request("Content-Length must be one decimal number")
        size = int(lengths[0])
        if size > MAX_BODY:
            raise bad_request(f"The request body is larger than {MAX_BODY} bytes")
        body = self.rfile.read(size)
        if len(body) != size:
            raise bad_request("The request body is shorter than its Content-Length")
        return body

    def _read_chunked(self) -> bytes:
        """RFC 9112 section 7.1: ``size [;ext] CRLF data CRLF`` ..., ``0 CRLF``, trailers, CRLF."""
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            size_text = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not _CHUNK_SIZE.fullmatch(size_text):
                raise bad_request("Malformed chunked body")
            size = int(size_text, 16)
            if size == 0:
                break
            if len(body) + size > MAX_BODY:
                raise bad_request(f"The request body is larger than {MAX_BODY} bytes")
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise bad_request("Malformed chunked body")
            body += chunk
        for _ in range(32):  # trailer fields, then the empty line
            if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                return bytes(body)
        raise bad_request("Malformed chunked body")

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors found by ``http.server`` itself (request line, headers) in AWS's form too."""
        self.close_connection = True
        if code >= 500:  # http.server's 501 (method) and 505 (version): the client's mistakes
            code = 400
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.1"  # answer with a status line and headers anyway
        detail = message or HTTPStatus(code).phrase
        self._send(Reply.error(Rejection(code, error_type_for(code), detail)))

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.client_address[0], format % args)


@contextmanager
def running(
    anchors: TrustAnchors | Model,
    clock: Callable[[], datetime] = utcnow,
    port: int = 0,
    revocations: Revocations | None = None,
) -> Iterator[EmulatorServer]:
    """An emulator serving on a background thread for the ``with`` block; ``.url`` is its URL.
    ``revocations`` apply whatever the trust anchor, as ``--crl`` does."""
    model = anchors if isinstance(anchors, Model) else Model.short_form(anchors)
    if revocations is not None:
        model = model.with_crls(revocations)
    server = EmulatorServer.bind(Emulator(model, clock), port)
    thread = threading.Thread(target=server.serve_forever, name="hwsigner-emulator", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


__all__ = ["EmulatorServer", "Handler", "running"]
