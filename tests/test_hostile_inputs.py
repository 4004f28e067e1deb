"""A careless user and bad files: mistyped URIs, FIFOs, endless devices, stale temporary files,
odd digits sent to ``serve``, clients that go away. One line, exit 1, no traceback, no PIN."""

from __future__ import annotations

import logging
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hwsigner._safe import read_file, read_user_file
from hwsigner.cli.serveconfig import read_auth_token
from hwsigner.credentials import Credentials
from hwsigner.delivery.credfile import write_profile
from hwsigner.delivery.endpoints import CredentialServer
from hwsigner.devpki import DevPki
from hwsigner.errors import ConfigError
from hwsigner.keys.pkcs11.session import pin_from_source
from hwsigner.keys.tpm.keyfile import TpmKeyFile

from .helpers import ARN_FLAGS, assert_one_line_error, process_credentials, run_cli
from .serving import FakeKeeper, exchange

PIN = "98765431"
NEAR_MISSES = [
    f"PKCS11:token=dev;object=ra?pin-value={PIN}",
    f"pkcs11;token=dev;object=ra?pin-value={PIN}",
    f" pkcs11:token=dev;object=ra?pin-value={PIN}",
    f"pkcs:token=dev;object=ra?pin-value={PIN}",
    f"pkcs11/token=dev?pin-source=file:/run/{PIN}",
]


@pytest.fixture(scope="module")
def leaf(pki: DevPki) -> tuple[Path, Path]:
    return pki.new_leaf("ec-p256", "careless", by_root=True)


@pytest.mark.parametrize("uri", NEAR_MISSES)
@pytest.mark.parametrize("flag", ["--private-key", "--certificate"])
def test_a_mistyped_uri_is_named_but_its_pin_never_shown(
    leaf: tuple[Path, Path], flag: str, uri: str
) -> None:
    given = {"--certificate": str(leaf[0]), "--private-key": str(leaf[1]), flag: uri}
    args = [arg for pair in given.items() for arg in pair]
    result = run_cli("credential-process", *args, *ARN_FLAGS)
    line = assert_one_line_error(result, "neither a file nor a pkcs11: URI", "exactly 'pkcs11:'")
    assert PIN not in line


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo.pem"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("flag", ["--certificate", "--private-key", "--intermediates"])
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "directory"])
def test_a_file_that_is_not_a_regular_file_is_refused(
    leaf: tuple[Path, Path], fifo: Path, tmp_path: Path, flag: str, kind: str
) -> None:
    bad = {"fifo": str(fifo), "/dev/zero": "/dev/zero", "directory": str(tmp_path)}[kind]
    given = {"--certificate": str(leaf[0]), "--private-key": str(leaf[1]), flag: bad}
    args = [arg for pair in given.items() for arg in pair]
    result = run_cli("credential-process", *args, *ARN_FLAGS, timeout=60)
    assert_one_line_error(result, "not a regular file")


def test_a_large_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.pem"
    with open(big, "wb") as f:
        f.truncate(64 << 20)  # sparse: costs no disk
    with pytest.raises(ConfigError, match="larger than"):
        read_user_file(str(big), "certificate", "--certificate")


def test_an_inherited_pipe_is_read_with_a_cap(leaf: tuple[Path, Path], emulator) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, leaf[0].read_bytes())
    os.close(write_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "hwsigner", "credential-process",
             "--certificate", f"/dev/fd/{read_end}", "--private-key", str(leaf[1]),
             *ARN_FLAGS, "--endpoint", emulator.url],
            pass_fds=(read_end,), capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        os.close(read_end)
    process_credentials(result)


def test_an_inherited_pipe_that_never_closes_meets_a_deadline() -> None:
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(ValueError, match="did not close"):
            read_file(f"/dev/fd/{read_end}", deadline=0.2)
        os.write(write_end, b"x" * 200)
        with pytest.raises(ValueError, match="larger than"):
            read_file(f"/dev/fd/{read_end}", limit=100, deadline=5)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_other_user_files_are_read_the_same_way(fifo: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        pin_from_source(f"file:{fifo}")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_auth_token(str(fifo))
    with pytest.raises(ConfigError, match="not a regular file"):
        TpmKeyFile.load(str(fifo))


def test_update_removes_its_own_stale_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "credentials"
    stale = tmp_path / ".credentials.k9x_2abc.tmp"  # what a kill -9 mid-write leaves
    stale.write_text("[default]\naws_secret_access_key = old\n")
    others = [tmp_path / ".credentials.mine.tmp", tmp_path / ".other.k9x_2abc.tmp"]
    for path in others:
        path.write_text("not ours")
    expiry = datetime.now(timezone.utc) + timedelta(hours=1)
    write_profile(target, "default", Credentials("ASIAEXAMPLEEXAMPLE", "s", "t", expiry))
    assert not stale.exists()
    assert all(path.exists() for path in others)
    assert "ASIAEXAMPLEEXAMPLE" in target.read_text()


@pytest.fixture
def served(caplog: pytest.LogCaptureFixture) -> Iterator[CredentialServer]:
    server = CredentialServer.listen(FakeKeeper(), "role", port=0)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    caplog.set_level(logging.DEBUG, logger="hwsigner")
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("header", ["X-aws-ec2-metadata-token-ttl-seconds", "Content-Length"])
@pytest.mark.parametrize("value", ["\u00b2", "1\u00b2", "\u00b9\u00b3"])  # digits to isdigit()
def test_serve_answers_400_or_ignores_odd_digits(
    served: CredentialServer, header: str, value: str
) -> None:
    request = f"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\n{header}: {value}\r\n\r\n"
    answer = exchange(served.port, request.encode("latin-1"))  # as http.server decodes headers
    status = answer.split(b"\r\n", 1)[0]
    assert status in (b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 200 OK"), answer


def test_clients_that_go_away_cost_one_debug_line_at_most(
    served: CredentialServer, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    for _ in range(20):
        conn = socket.create_connection(("127.0.0.1", served.port), timeout=30)
        conn.sendall(b"PUT /latest/api/token HTTP/1.1\r\nContent-Length: 100\r\n\r\nab")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # a reset, mid-body
    exchange(served.port, b"GET /nowhere HTTP/1.1\r\n\r\n")  # the server still answers
    assert "Traceback" not in capfd.readouterr().err
    assert all(r.levelno <= logging.DEBUG for r in caplog.records), caplog.text
    assert all("\n" not in r.getMessage() for r in caplog.records)
