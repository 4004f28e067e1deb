"""``serve`` under systemd and across network namespaces: a listening socket handed over as
systemd hands it (fd 3, ``LISTEN_PID``, ``LISTEN_FDS``), readiness on ``NOTIFY_SOCKET``, the unit
files of docs/systemd, and a client in another network namespace reaching ``serve --bind``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwsigner.devpki import DevPki

from .conftest import RunningEmulator
from .delivery import emulator_call, fail_service
from .helpers import ARN_FLAGS, REPO
from .serving import Serving, token_file

UNITS = REPO / "docs" / "systemd"
# systemd's way: the socket becomes fd 3 and LISTEN_PID names the process that execs serve
HAND_OVER = """
import os, sys
fd = int(sys.argv[1])
os.dup2(fd, 3)  # inheritable, as systemd leaves it
if fd != 3:
    os.close(fd)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
os.execv(sys.argv[2], sys.argv[2:])
"""
CREDENTIALS = "/latest/meta-data/iam/security-credentials/hwsigner-test"


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(60)
        yield sock, path


def test_socket_activation_and_readiness(
    flags: list[str], own_emulator: RunningEmulator, notify_socket: tuple[socket.socket, str]
) -> None:
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    fd = listening.fileno()
    notify, path = notify_socket
    fail_service(own_emulator.url, count=1, status=403)  # socket activation: serve waits it out
    prefix = (sys.executable, "-c", HAND_OVER, str(fd))
    server = Serving([*flags], env={"NOTIFY_SOCKET": path}, prefix=prefix, pass_fds=(fd,))
    listening.close()  # serve holds it now
    try:
        assert (
            server.first == f"export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:{port}/\n"
        )
        assert notify.recv(4096) == b"READY=1"  # once the role holds credentials
        assert server.get("/readyz")[0] == 200
        assert emulator_call(own_emulator.url, "GET", "stats")["failedOnPurpose"] == 1
        status, token = server.get(
            "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, "PUT"
        )
        assert status == 200
        assert server.get(CREDENTIALS, {"X-aws-ec2-metadata-token": token})[0] == 200
    finally:
        code, output = server.stop()
    assert code == 0, output
    assert notify.recv(4096) == b"STOPPING=1"
    assert "Traceback" not in output


def test_without_a_handed_over_socket_nothing_is_inherited(flags: list[str]) -> None:
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "1"}  # another process's sockets: not ours
    server = Serving([*flags, "--port", "0"], env=env)
    try:
        assert server.port != 0 and server.get("/healthz")[0] == 200
    finally:
        assert server.stop()[0] == 0


def test_unit_files_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    hwsigner = Path(sys.executable).with_name("hwsigner")
    for unit in UNITS.iterdir():
        text = unit.read_text().replace("/usr/local/bin/hwsigner", str(hwsigner))
        (tmp_path / unit.name).write_text(text)
    units = sorted(str(path) for path in tmp_path.iterdir())
    result = subprocess.run([analyze, "verify", *units], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # systemd-analyze warns on stderr, status 0


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    """Two network namespaces joined by a veth pair: 10.213.97.1/30 (server side) and .2."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2's ip to make network namespaces")
    tag = uuid.uuid4().hex[:6]
    server, client = f"hws-s-{tag}", f"hws-c-{tag}"
    try:
        ip("netns", "add", server)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot make a network namespace here: {exc.stderr.strip()}")
    try:
        ip("netns", "add", client)
        ip("link", "add", "name", f"hs{tag}", "netns", server, "type", "veth",
           "peer", "name", f"hc{tag}", "netns", client)  # fmt: skip
        for space, device, address in ((server, f"hs{tag}", "10.213.97.1/30"),
                                       (client, f"hc{tag}", "10.213.97.2/30")):  # fmt: skip
            ip("-n", space, "addr", "add", address, "dev", device)
            ip("-n", space, "link", "set", device, "up")
            ip("-n", space, "link", "set", "lo", "up")
        yield server, client
    finally:
        for space in (server, client):
            subprocess.run(["ip", "netns", "del", space], capture_output=True)


CLIENT = """
import http.client, sys
def status(method, path, headers):
    conn = http.client.HTTPConnection("10.213.97.1", int(sys.argv[1]), timeout=10)
    conn.request(method, path, headers=headers)
    return conn.getresponse().status
token = {"Authorization": sys.argv[2]}
print(status("GET", "/credentials", token), status("GET", "/credentials", {}),
      status("PUT", "/latest/api/token", {}), status("GET", "/healthz", {}))
"""


def test_a_client_in_another_namespace(
    namespaces: tuple[str, str], pki: DevPki, tmp_path: Path
) -> None:
    server_space, client_space = namespaces
    inside = ("ip", "netns", "exec", server_space)
    emulator = subprocess.Popen(
        [*inside, sys.executable, "-m", "hwsigner", "emulator", "--port", "0",
         "--trust-anchor", str(pki.root_cert)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert emulator.stdout is not None
        url = emulator.stdout.readline().strip()  # the emulator on the namespace's loopback
        cert, key = pki.new_leaf("ec-p256", "netns")
        path, token = token_file(tmp_path, "netns")
        flags = [*ARN_FLAGS, "--endpoint", url, "--certificate", str(cert), "--private-key",
                 str(key), "--intermediates", str(pki.issuing_cert)]  # fmt: skip
        refused = subprocess.run(
            [*inside, sys.executable, "-m", "hwsigner", "serve", *flags, "--bind", "10.213.97.1"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert refused.returncode == 1 and "token" in refused.stderr
        args = [*flags, "--bind", "10.213.97.1", "--port", "0", "--auth-token-file", str(path)]
        server = Serving(args, prefix=inside)
        try:
            assert "http://10.213.97.1:" in server.first
            answer = subprocess.run(
                ["ip", "netns", "exec", client_space, sys.executable, "-c", CLIENT,
                 str(server.port), token],
                capture_output=True, text=True, check=True, timeout=60,
            )  # fmt: skip
        finally:
            assert server.stop()[0] == 0
        assert answer.stdout.split() == ["200", "401", "404", "200"]
    finally:
        emulator.terminate()
        emulator.communicate(timeout=10)
