"""``hwsigner serve`` under load: credential reads per second from 1, 8 and 64 clients.

    >>> serve(lab, report, seconds=3.0)

The server is the real command (``hwsigner serve --port 0`` with a file key, against the
emulator), in its own process; the clients are threads of this process, on loopback only. Each
client takes an IMDSv2 token once, then reads ``/latest/meta-data/iam/security-credentials/ROLE``
until the time is up (and at most ``MAX_READS``), over one keep-alive connection (http.client),
or over a new connection per read. A new connection asks for ``Connection: close`` and reads to
the end, so the server closes first: the thousands of closed connections then wait out TIME_WAIT
on the server's port, not on client ports that other programs on this machine need. The
emulator's CreateSession count shows how many the whole run cost.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
from dataclasses import dataclass

from bench_lab import HWSIGNER, Lab
from bench_report import Report
from lab import ROLE_ARN

CLIENTS = (1, 8, 64)
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
MAX_READS = 200_000  # per level, across clients: a bound, should the clock misbehave
MAX_CONNECTIONS = 5_000  # per level of new connections: each leaves a socket in TIME_WAIT
CONNECTION_SECONDS = 1.0  # at most, per level of new connections
ROLE = ROLE_ARN.rsplit("/", 1)[-1]
CREDENTIALS_PATH = f"/latest/meta-data/iam/security-credentials/{ROLE}"
BUDGET_CLIENTS, BUDGET_READS = 8, 2000


@dataclass
class Load:
    """What one level of load did."""

    reads: int = 0
    failures: int = 0
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.reads / self.seconds if self.seconds else 0.0


def token(conn: http.client.HTTPConnection) -> str:
    conn.request("PUT", "/latest/api/token", headers={TTL_HEADER: "600"})
    return conn.getresponse().read().decode()


def read_once(port: int, token: str) -> bool:
    """One read on a new connection that the server closes; True when it answered 200."""
    request = (
        f"GET {CREDENTIALS_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"X-aws-ec2-metadata-token: {token}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):  # until the server closes
            answer += chunk
    return answer.startswith(b"HTTP/1.1 200 ") and b"\r\n\r\n{" in answer


def load(port: int, clients: int, seconds: float, *, keep_alive: bool) -> Load:
    """``clients`` threads reading credentials for ``seconds``; they start together."""
    result = Load()
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    limit = (MAX_READS if keep_alive else MAX_CONNECTIONS) // clients
    if not keep_alive:
        seconds = min(seconds, CONNECTION_SECONDS)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"X-aws-ec2-metadata-token": token(conn)}
        reads = failures = 0
        start.wait()
        deadline = time.perf_counter() + seconds
        while reads + failures < limit and time.perf_counter() < deadline:
            if keep_alive:
                conn.request("GET", CREDENTIALS_PATH, headers=headers)
                answer = conn.getresponse()
                ok = answer.status == 200 and answer.read().startswith(b"{")
            else:
                ok = read_once(port, headers["X-aws-ec2-metadata-token"])
            reads, failures = reads + ok, failures + (not ok)
        conn.close()
        with lock:
            result.reads += reads
            result.failures += failures

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    result.seconds = time.perf_counter() - began
    return result


def serve(lab: Lab, report: Report, seconds: float) -> None:
    report.section(
        "serve: credential reads per second",
        f"IMDSv2 reads on loopback, {seconds:g} s per line (new connections: at most "
        f"{min(seconds, CONNECTION_SECONDS):g} s and {MAX_CONNECTIONS:,} reads); file key; "
        "client threads in this process, server in its own",
    )
    before = lab.create_sessions()
    server = subprocess.Popen(
        [HWSIGNER, "serve", "--port", "0", *lab.flags("file")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=lab.env,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()  # export AWS_EC2_METADATA_SERVICE_ENDPOINT=...
        if "http://127.0.0.1:" not in line:
            raise RuntimeError(f"hwsigner serve did not start: {line!r}")
        port = int(line.rsplit(":", 1)[1].strip("/"))
        _check_answer(port)
        for keep_alive in (True, False):
            for clients in CLIENTS:
                done = load(port, clients, seconds, keep_alive=keep_alive)
                how = "keep-alive" if keep_alive else "new connection per read"
                what = f"{clients:>2} client{'s' if clients > 1 else ' '}, {how}"
                value = f"{done.per_second:,.0f} /s"
                if keep_alive and clients == BUDGET_CLIENTS:
                    report.row(
                        what, value, budget=BUDGET_READS, at_least=True, measure=done.per_second
                    )
                else:
                    report.row(what, value)
                if done.failures:
                    report.note(f"  {done.failures} reads failed")
    finally:
        server.terminate()
        server.wait(timeout=30)
    report.count(
        "CreateSession calls for the whole run", lab.create_sessions() - before, expected=1
    )


def _check_answer(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", CREDENTIALS_PATH, headers={"X-aws-ec2-metadata-token": token(conn)})
        answer = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    if answer.get("Code") != "Success" or not answer.get("AccessKeyId"):
        raise RuntimeError(f"hwsigner serve answered {sorted(answer)}")
