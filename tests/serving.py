"""``hwsigner serve`` as a subprocess for the fleet tests: a config file, the process, HTTP."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hwsigner.credentials import Credentials

from .helpers import PROFILE_ARN, TRUST_ANCHOR_ARN

ACCOUNT_ROLE = "arn:aws:iam::111122223333:role/"
# Run inside serve (through PYTHONPATH): at exit, write how many PKCS#11 logins it made.
SITECUSTOMIZE = """
import atexit, os

def _write_logins():
    from hwsigner.keys.pkcs11.session import COUNTERS
    with open(os.environ["HWSIGNER_TEST_LOGINS"], "w") as out:
        out.write(str(COUNTERS.logins))

atexit.register(_write_logins)
"""


def write_config(path: Path, identity: dict[str, str], roles: dict[str, dict[str, str]]) -> Path:
    """An INI file: ``[identity]`` and one ``[role NAME]`` per role, with the test ARNs."""
    lines = ["[identity]", *(f"{k} = {v}" for k, v in identity.items())]
    for name, values in roles.items():
        base = {"trust-anchor-arn": TRUST_ANCHOR_ARN, "profile-arn": PROFILE_ARN,
                "role-arn": ACCOUNT_ROLE + name}  # fmt: skip
        lines += [f"[role {name}]", *(f"{k} = {v}" for k, v in {**base, **values}.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def token_file(directory: Path, name: str) -> tuple[Path, str]:
    token = f"{name}-token-0123456789abcdef"
    path = directory / f"{name}.token"
    path.write_text(token)
    return path, token


class Serving:
    """``hwsigner serve ARGS`` in the background; ``lines`` is what it printed first."""

    def __init__(
        self,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        command = [*prefix, sys.executable, "-m", "hwsigner", "serve", *args]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, **(env or {})}, pass_fds=pass_fds,
        )  # fmt: skip
        assert self.process.stdout is not None and self.process.stderr is not None
        self.errors: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        first = self.process.stdout.readline()
        if "http://" not in first:
            self.process.kill()
            self._reader.join(10)
            raise AssertionError(f"serve did not start: {first!r} {''.join(self.errors)}")
        self.first = first
        self.url = first.split("=", 1)[1].strip().removesuffix("/").removesuffix("/credentials")
        self.port = int(self.url.rsplit(":", 1)[1])

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.errors.append(line)

    def get(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, answer.read().decode()
        finally:
            conn.close()

    def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit status and everything it printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)  # not communicate(): the reader thread owns stderr
        assert self.process.stdout is not None and self.process.stderr is not None
        with self.process.stdout:
            out = self.process.stdout.read()
        self._reader.join(10)
        self.process.stderr.close()
        return self.process.returncode, self.first + out + "".join(self.errors)


class FakeKeeper:
    """A keeper whose credentials are always fresh: for tests of the HTTP side alone."""

    last_updated = None

    def get(self) -> Credentials:
        expiry = datetime.now(timezone.utc) + timedelta(hours=1)
        return Credentials("ASIAEXAMPLEEXAMPLE", "secret", "token", expiry)

    fresh = get


def exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes to a loopback server, close our side, read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer
