"""Answer a prompt on a real terminal (a pty), with stdin pointed at /dev/null.

Shows that secrets are read from /dev/tty with echo off and never from stdin.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import termios
import time
from pathlib import Path


def answer_prompt(
    argv: list[str], prompt: bytes, answer: str, out: Path, timeout: float = 60
) -> tuple[int, bytes]:
    """Run ``argv`` on a new terminal, type ``answer`` at ``prompt``.

    Returns the exit code and what the terminal showed; the program's stdout and stderr go to
    ``out``.
    """
    pid, terminal = pty.fork()  # the child gets a new session with this pty as its terminal
    if pid == 0:  # pragma: no cover - the child
        # keep the terminal open until exit: with no fd on it, the parent's reads would fail
        # (EIO) in the moment before the program opens /dev/tty
        os.dup2(0, 10)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)  # stdin is not the terminal: a secret read from stdin would be empty
        target = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, 1)
        os.dup2(target, 2)
        os.execv(argv[0], argv)  # noqa: S606 - no shell wanted
    try:
        seen = read_until(terminal, prompt, timeout)
        wait_for_echo_off(terminal, timeout)  # typed before that, the answer would be flushed
        os.write(terminal, f"{answer}\n".encode())
        seen += read_until(terminal, b"\n", timeout)
    finally:
        status = wait_or_kill(pid, timeout)
        os.close(terminal)
    return os.waitstatus_to_exitcode(status), seen


def wait_for_echo_off(fd: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        if time.monotonic() > deadline:
            raise AssertionError("the terminal's echo was never turned off")
        time.sleep(0.01)


def wait_or_kill(pid: int, timeout: float) -> int:
    """The child's wait status; a child still running after ``timeout`` is killed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    while needle not in seen:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise AssertionError(f"no {needle!r} on the terminal; saw {seen!r}")
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    return seen
