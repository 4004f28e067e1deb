"""``hwsigner serve`` under load, against the ThreadingHTTPServer it replaced, in one run.

    >>> serve(lab, report, seconds=3.0)

Two servers run side by side: this checkout's ``serve`` and the ``serve`` of ``BASELINE`` (the
last commit with the ``http.server`` endpoint, extracted from git into the lab), each in its own
process with a file key against the emulator. The levels alternate between them (A, B, then B, A)
so both see the same machine. Clients are processes (so the measuring side is not one GIL),
each with ``clients / processes`` threads on raw sockets: a keep-alive client sends the same
request over one connection and reads each answer by its ``Content-Length``; a new-connection
client asks ``Connection: close`` and reads to the end, so the server closes first and the
closed connections wait out TIME_WAIT on the server's port, not on client ports. Every client
takes an IMDSv2 token once, then reads ``/latest/meta-data/iam/security-credentials/ROLE``.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

from bench_lab import REPO, Lab
from bench_report import Report
from lab import ROLE_ARN

BASELINE = "7f6e642"  # main before the asyncio server: ThreadingHTTPServer
CLIENTS = (1, 8, 64)
PROCESSES = 8  # at most; 64 clients are 8 processes of 8 threads
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
CONNECTION_SECONDS = 1.0  # at most, per level of new connections (TIME_WAIT sockets)
ROLE = ROLE_ARN.rsplit("/", 1)[-1]
CREDENTIALS_PATH = f"/latest/meta-data/iam/security-credentials/{ROLE}"
BUDGET_CLIENTS, BUDGET_RATIO = 8, 3.0


def take_token(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("PUT", "/latest/api/token", headers={TTL_HEADER: "600"})
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def request_bytes(port: int, token: str, *, close: bool) -> bytes:
    last = "Connection: close\r\n" if close else ""
    return (
        f"GET {CREDENTIALS_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"X-aws-ec2-metadata-token: {token}\r\n{last}\r\n"
    ).encode()


def keep_alive_reads(port: int, request: bytes, deadline: float) -> tuple[int, int]:
    """Reads over one connection until ``deadline``: (answered 200, failed)."""
    ok = failed = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        while time.perf_counter() < deadline:
            sock.sendall(request)
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                buffer += sock.recv(65536)
            head = buffer[:end].lower()
            length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            while len(buffer) < end + 4 + length:
                buffer += sock.recv(65536)
            good = head.startswith(b"http/1.1 200 ") and buffer[end + 4 : end + 5] == b"{"
            ok, failed = ok + good, failed + (not good)
            buffer = buffer[end + 4 + length :]
    return ok, failed


def new_connection_reads(port: int, request: bytes, deadline: float) -> tuple[int, int]:
    ok = failed = 0
    while time.perf_counter() < deadline:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        good = answer.startswith(b"HTTP/1.1 200 ") and b"\r\n\r\n{" in answer
        ok, failed = ok + good, failed + (not good)
    return ok, failed


def client_process(
    port: int, threads: int, keep_alive: bool, start: float, seconds: float, out: object
) -> None:
    """``threads`` clients from ``start`` (a wall-clock time) for ``seconds``; puts totals."""
    request = request_bytes(port, take_token(port), close=not keep_alive)
    reads = keep_alive_reads if keep_alive else new_connection_reads
    totals = [0, 0]
    lock = threading.Lock()

    def run() -> None:
        time.sleep(max(start - time.time(), 0))
        ok, failed = reads(port, request, time.perf_counter() + seconds)
        with lock:
            totals[0] += ok
            totals[1] += failed

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put(tuple(totals))  # type: ignore[attr-defined]


def load(port: int, clients: int, seconds: float, *, keep_alive: bool) -> tuple[float, int]:
    """Answers per second and failures, with ``clients`` clients for ``seconds``."""
    if not keep_alive:
        seconds = min(seconds, CONNECTION_SECONDS)
    processes = min(clients, PROCESSES)
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    start = time.time() + 0.5  # every process has taken its token by then
    args = (port, clients // processes, keep_alive, start, seconds, out)
    children = [context.Process(target=client_process, args=args) for _ in range(processes)]
    for child in children:
        child.start()
    results = [out.get(timeout=seconds + 60) for _ in children]
    for child in children:
        child.join(timeout=30)
    return sum(ok for ok, _ in results) / seconds, sum(failed for _, failed in results)


def baseline_tree(lab: Lab) -> Path | None:
    """``BASELINE``'s ``hwsigner`` package, extracted into the lab; None outside a git checkout."""
    target = lab.directory / "baseline"
    archive = lab.directory / "baseline.tar"
    made = subprocess.run(
        ["git", "-C", str(REPO), "archive", "-o", str(archive), BASELINE, "hwsigner"],
        capture_output=True,
    )
    if made.returncode != 0:
        return None
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


def start_server(lab: Lab, tree: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**lab.env, "PYTHONPATH": os.pathsep.join((str(tree), str(REPO)))}
    server = subprocess.Popen(
        [sys.executable, "-m", "hwsigner", "serve", "--port", "0", *lab.flags("file")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, env=env, cwd=tree,
    )  # fmt: skip
    assert server.stdout is not None
    line = server.stdout.readline().strip()  # export AWS_EC2_METADATA_SERVICE_ENDPOINT=...
    if "http://127.0.0.1:" not in line:
        server.kill()
        raise RuntimeError(f"hwsigner serve did not start: {line!r}")
    port = int(line.rsplit(":", 1)[1].strip("/"))
    _check_answer(port)
    return server, port


def serve(lab: Lab, report: Report, seconds: float) -> None:
    report.section(
        "serve: credential reads per second",
        f"IMDSv2 reads on loopback, {seconds:g} s per line (new connections: at most "
        f"{min(seconds, CONNECTION_SECONDS):g} s); file key; clients in up to {PROCESSES} "
        f"processes; today's server against {BASELINE}'s in turns",
    )
    before = lab.create_sessions()
    baseline = baseline_tree(lab)
    servers = {"today": start_server(lab, REPO)}
    if baseline is None:
        report.note(f"no baseline: {BASELINE} cannot be read from git here")
    else:
        servers["baseline"] = start_server(lab, baseline)
    try:
        names = list(servers)
        for level, (keep_alive, clients) in enumerate(
            (k, c) for k in (True, False) for c in CLIENTS
        ):
            rates = {}
            for name in names if level % 2 == 0 else names[::-1]:
                rate, failures = load(servers[name][1], clients, seconds, keep_alive=keep_alive)
                rates[name] = rate
                if failures:
                    report.note(f"  {name}: {failures} reads failed")
            how = "keep-alive" if keep_alive else "new connection per read"
            what = f"{clients:>2} client{'s' if clients > 1 else ' '}, {how}"
            value = f"{rates['today']:,.0f} /s"
            if "baseline" in rates:
                value += f" vs {rates['baseline']:,.0f}"
                ratio = rates["today"] / rates["baseline"] if rates["baseline"] else 0.0
                budget = BUDGET_RATIO if clients == BUDGET_CLIENTS else None
                report.row(what, value, ratio=ratio, budget=budget, at_least=True)
            else:
                report.row(what, value)
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait(timeout=30)
    report.count(
        "CreateSession calls for the whole run",
        lab.create_sessions() - before,
        expected=len(servers),
    )


def _check_answer(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "GET", CREDENTIALS_PATH, headers={"X-aws-ec2-metadata-token": take_token(port)}
        )
        answer = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    if answer.get("Code") != "Success" or not answer.get("AccessKeyId"):
        raise RuntimeError(f"hwsigner serve answered {sorted(answer)}")
