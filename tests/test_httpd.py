"""The asyncio HTTP server on its own: a Unix socket (what an agent would serve on), requests
pipelined on one connection, bodies dropped, versions refused."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwsigner.delivery.httpd import Answer, HttpServer, Request, text


def echo(request: Request) -> Answer:
    return text(200, f"{request.method} {request.path}")


@pytest.fixture
def unix_server(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "agent.sock")
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(path)
    listening.listen()
    server = HttpServer([(listening, echo)])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()
    thread.join(10)


def exchange(path: str, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(path)
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_a_unix_socket_is_served(unix_server: str) -> None:
    answer = exchange(unix_server, b"GET /x?q=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nGET /x")


def test_pipelined_requests_are_answered_in_order_and_bodies_dropped(unix_server: str) -> None:
    requests = (b"PUT /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nGET /" + b"GET /b HTTP/1.1\r\n\r\n"
                + b"GET /c HTTP/1.0\r\n\r\n" + b"GET /never HTTP/1.1\r\n\r\n")  # fmt: skip
    answer = exchange(unix_server, requests)
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in answer.split(b"HTTP/1.1 200 OK")[1:]]
    assert [body[:6] for body in bodies] == [b"PUT /a", b"GET /b", b"GET /c"]  # 1.0: then closed
    assert answer.count(b"Connection: close") == 1


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [(b"GET / HTTP/2.0\r\n\r\n", b"505"), (b"GET /\r\n\r\n", b"400"),
     (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", b"400"),
     (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", b"431"),
     (b"GET / HTTP/1.1\r\nX: " + b"y" * 70000, b"431")],
)  # fmt: skip
def test_malformed_requests_get_one_answer_and_a_close(
    unix_server: str, request_bytes: bytes, status: bytes
) -> None:
    answer = exchange(unix_server, request_bytes)
    assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer[:80]
    assert b"Connection: close" in answer and answer.count(b"HTTP/1.1 ") == 1
