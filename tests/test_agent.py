"""``hwsigner agent`` and ``credential-process --agent``: SDKs read the agent's credentials
through ``credential_process`` (one CreateSession for many reads, one PIN typed on a terminal),
and the socket answers this user only."""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from hwsigner.devpki import DevPki

from .conftest import RunningEmulator
from .delivery import create_sessions, isolate_aws, reset
from .helpers import ARN_FLAGS, assert_one_line_error, run_cli
from .softhsm import MODULE, SoftHsm, make_lab, needs_softhsm, softhsm  # noqa: F401
from .terminal import read_until, wait_for_echo_off, wait_or_kill
from .test_js_sdk import js_env, needs_js_sdk, run_js

PROFILE_LINE = "credential_process = hwsigner credential-process --agent"


class Agent:
    """``hwsigner agent --socket PATH`` in the background, started once its export line is out."""

    def __init__(self, argv: list[str], socket_path: Path) -> None:
        self.socket = socket_path
        self.process = subprocess.Popen(
            [*argv, "--socket", str(socket_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        self.errors: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        line = self.process.stdout.readline()
        if line != f"export HWSIGNER_AGENT_SOCKET={socket_path}\n":
            self.process.kill()
            raise AssertionError(f"agent did not start: {line!r} {''.join(self.errors)}")

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.errors.extend(self.process.stderr)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)  # not communicate(): the reader thread owns stderr
        assert self.process.stdout is not None and self.process.stderr is not None
        self.process.stdout.close()
        self._reader.join(10)
        self.process.stderr.close()
        return self.process.returncode


@pytest.fixture
def agent(flags: list[str], tmp_path: Path) -> Iterator[Agent]:
    running = Agent([sys.executable, "-m", "hwsigner", "agent", *flags], tmp_path / "a" / "s.sock")
    yield running
    running.stop()


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What an SDK runs ``credential_process`` with: ``hwsigner`` on PATH, this checkout."""
    return js_env(tmp_path, **extra)


def test_socket_and_directory_are_private(agent: Agent) -> None:
    assert stat.S_IMODE(agent.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(agent.socket.parent.stat().st_mode) == 0o700


def test_boto3_reads_the_agent_with_one_create_session(
    agent: Agent, own_emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _ = isolate_aws(monkeypatch, tmp_path)
    config.write_text(f"[profile device]\n{PROFILE_LINE}\n")
    for name, value in cli_env(tmp_path, HWSIGNER_AGENT_SOCKET=str(agent.socket)).items():
        monkeypatch.setenv(name, value)
    before = create_sessions(own_emulator.url)
    keys = set()
    for _ in range(5):  # five sessions: five credential_process runs
        found = boto3.Session(profile_name="device").get_credentials()
        assert found is not None
        keys.add(found.get_frozen_credentials().access_key)
    assert len(keys) == 1 and keys.pop().startswith("ASIA")
    assert create_sessions(own_emulator.url) == before  # the agent fetched before we asked


def test_aws_cli_reads_the_agent(agent: Agent, tmp_path: Path) -> None:
    aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    if aws is None:
        pytest.skip("the AWS CLI is not installed here (awscli is not among the venv's packages)")
    config = tmp_path / "config"
    config.write_text(f"[profile device]\n{PROFILE_LINE}\n")
    env = cli_env(tmp_path, AWS_CONFIG_FILE=str(config), HWSIGNER_AGENT_SOCKET=str(agent.socket))
    key = json.loads(run_cli("credential-process", "--agent", agent.socket).stdout)["AccessKeyId"]
    result = subprocess.run(  # "configure list" resolves the credentials in AWS CLI v1 and v2
        [aws, "configure", "list", "--profile", "device"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"****{key[-4:]}" in result.stdout and "custom-process" in result.stdout, result.stdout


@needs_js_sdk
def test_js_sdk_reads_the_agent(agent: Agent, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(f"[profile device]\n{PROFILE_LINE}\n")
    env = js_env(tmp_path, AWS_CONFIG_FILE=str(config), HWSIGNER_AGENT_SOCKET=str(agent.socket))
    result = run_js("process", env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"].startswith("ASIA")


def test_path_argument_wins_over_the_variable(agent: Agent, tmp_path: Path) -> None:
    env = {"HWSIGNER_AGENT_SOCKET": str(tmp_path / "nowhere.sock")}
    result = run_cli("credential-process", "--agent", agent.socket, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["AccessKeyId"].startswith("ASIA")


def test_no_agent_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sock"
    result = run_cli("credential-process", "--agent", missing)
    message = assert_one_line_error(result, "no agent answers on")
    assert str(missing) in message and "--agent-fallback" in message


def test_fallback_signs_directly(
    flags: list[str], own_emulator: RunningEmulator, tmp_path: Path
) -> None:
    before = create_sessions(own_emulator.url)
    missing = str(tmp_path / "missing.sock")
    result = run_cli("credential-process", "--agent", missing, "--agent-fallback", *flags)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["AccessKeyId"].startswith("ASIA")
    assert create_sessions(own_emulator.url) == before + 1


def test_the_variable_alone_does_not_switch_agent_mode_on(flags: list[str], tmp_path: Path) -> None:
    env = {"HWSIGNER_AGENT_SOCKET": str(tmp_path / "missing.sock")}
    result = run_cli("credential-process", *flags, env=env)
    assert result.returncode == 0, result.stderr


def test_a_second_agent_on_a_live_socket_is_refused(agent: Agent, flags: list[str]) -> None:
    result = run_cli("agent", *flags, "--socket", agent.socket)
    assert_one_line_error(result, "an agent already listens on")


NOBODY_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print("connect:", exc.strerror)
else:
    print("answer:", s.recv(100).decode().strip())
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="running a client as another user needs root and setpriv",
)
def test_another_user_is_refused(flags: list[str]) -> None:
    """The kernel keeps others out of the 0700 directory; with it and the socket opened up, the
    peer check still refuses them."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="hwsigner-agent-"))  # reachable: pytest's tmp is 0700
    agent = Agent([sys.executable, "-m", "hwsigner", "agent", *flags], base / "a" / "s.sock")
    try:
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        client = [*nobody, sys.executable, "-I", "-c", NOBODY_CLIENT, str(agent.socket)]
        base.chmod(0o755)
        first = subprocess.run(client, capture_output=True, text=True, timeout=30, check=False)
        assert first.stdout.strip() == "connect: Permission denied", first.stderr
        agent.socket.parent.chmod(0o755)
        agent.socket.chmod(0o666)
        second = subprocess.run(client, capture_output=True, text=True, timeout=30, check=False)
        assert second.stdout.strip() == "answer: refused", second.stderr
    finally:
        assert agent.stop() == 0
        shutil.rmtree(base)
    assert any("refused a process of user id 65534" in line for line in agent.errors)


@needs_softhsm
@pytest.mark.softhsm
def test_one_pin_entry_for_many_clients(
    softhsm: SoftHsm,  # noqa: F811
    pki: DevPki,
    own_emulator: RunningEmulator,
    tmp_path: Path,
) -> None:
    """The agent asks for the PIN once, on its terminal; clients then run without one, and the
    emulator sees one CreateSession for all of them."""
    reset(own_emulator.url)
    lab = make_lab(softhsm, pki, "agent")
    sock = tmp_path / "pin" / "agent.sock"
    argv = [sys.executable, "-m", "hwsigner", "agent", "--certificate", lab.token.uri(object="ec"),
            "--pkcs11-lib", str(MODULE), *ARN_FLAGS,
            "--endpoint", own_emulator.url, "--socket", str(sock)]  # fmt: skip
    out = tmp_path / "agent.out"
    pid, terminal = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.dup2(0, 10)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        target = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, 1)
        os.dup2(target, 2)
        os.execv(argv[0], argv)  # noqa: S606
    try:
        seen = read_until(terminal, b"PIN for token", 60)
        wait_for_echo_off(terminal, 60)
        os.write(terminal, f"{lab.token.pin}\n".encode())
        wait_for_file_line(out, "export HWSIGNER_AGENT_SOCKET=")
        config = tmp_path / "config"
        config.write_text(f"[profile device]\n{PROFILE_LINE} {sock}\n")
        env = cli_env(tmp_path, AWS_CONFIG_FILE=str(config))
        script = "import boto3\nfor _ in range(3): print(boto3.Session(profile_name='device')"
        script += ".get_credentials().get_frozen_credentials().access_key)"
        for _ in range(3):
            result = subprocess.run(
                [sys.executable, "-c", script], env=env, capture_output=True, text=True,
                timeout=60, stdin=subprocess.DEVNULL, check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert len(set(result.stdout.split())) == 1
        assert create_sessions(own_emulator.url) == 1
    finally:
        os.kill(pid, signal.SIGTERM)
        status = wait_or_kill(pid, 30)
        seen += drain(terminal)
        os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 0, out.read_text()
    assert seen.count(b"PIN for token") == 1
    assert lab.token.pin.encode() not in seen + out.read_bytes()


def wait_for_file_line(path: Path, start: str, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(line.startswith(start) for line in path.read_text().splitlines()):
            return
        time.sleep(0.05)
    raise AssertionError(f"no {start!r} in {path.read_text()!r}")


def drain(fd: int) -> bytes:
    import select

    seen = b""
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    return seen


def test_daemon_prints_its_socket_and_pid_once_it_holds_credentials(
    flags: list[str], tmp_path: Path
) -> None:
    sock = tmp_path / "d" / "agent.sock"
    result = run_cli("agent", "--daemon", "--socket", sock, *flags)
    assert result.returncode == 0, result.stderr
    exports = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.split("\n")
                   if line)  # fmt: skip
    assert exports["HWSIGNER_AGENT_SOCKET"] == str(sock)
    pid = int(exports["HWSIGNER_AGENT_PID"])
    try:
        answer = run_cli("credential-process", "--agent", env={"HWSIGNER_AGENT_SOCKET": str(sock)})
        assert json.loads(answer.stdout)["AccessKeyId"].startswith("ASIA"), answer.stderr
    finally:
        os.kill(pid, signal.SIGTERM)
    import time

    deadline = time.monotonic() + 30
    while sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not sock.exists()  # it removed its socket on the way out


def test_daemon_that_cannot_start_says_why(tmp_path: Path) -> None:
    result = run_cli("agent", "--daemon", "--socket", tmp_path / "s.sock", "--certificate",
                     tmp_path / "missing.pem", *ARN_FLAGS)  # fmt: skip
    assert_one_line_error(result, "hwsigner: ")
