"""Secrets typed at the terminal: read from ``/dev/tty`` with echo off, never from stdin.

stdin belongs to whoever runs us (the AWS CLI runs ``credential_process`` with a pipe), so a
prompt there would hang or read the wrong thing; with no terminal the caller gets a
``ConfigError`` that names the flag or variable to use instead.
"""

from __future__ import annotations

import os

from .errors import ConfigError

TTY = "/dev/tty"


def ask_secret(prompt: str, *, instead: str) -> str:
    """Ask for a secret on the terminal. ``instead`` names the non-interactive way to give it."""
    try:
        fd = os.open(TTY, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        raise ConfigError(
            f"{prompt.rstrip(': ')} is needed and there is no terminal to ask on",
            hint=f"use {instead}",
        ) from None
    try:
        return _read_without_echo(fd, prompt)
    finally:
        os.close(fd)


def _read_without_echo(fd: int, prompt: str) -> str:
    import termios

    old = termios.tcgetattr(fd)
    new = termios.tcgetattr(fd)
    new[3] &= ~termios.ECHO
    os.write(fd, prompt.encode())
    try:
        termios.tcsetattr(fd, termios.TCSAFLUSH, new)
        line = b""
        while not line.endswith(b"\n"):
            chunk = os.read(fd, 1)
            if not chunk:
                break
            line += chunk
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, old)
        os.write(fd, b"\n")
    return line.rstrip(b"\r\n").decode()
