"""The key interface every backend implements, the options opening a key may need, and the
terminal prompt for a secret (a PIN, a password) that no option gave.

    >>> from hwsigner.keys.backend import KeyOptions
    >>> KeyOptions(pkcs8_password="secret")
    KeyOptions(pkcs11_lib=None, reuse_pin=False, no_tpm_key_password=False, tpm_tcti=None)

Its own module, below ``hwsigner.keys`` and the backends: ``keys.open_key`` imports the backends,
and a backend importing its base class from ``keys`` itself would close a loop.

``ask_secret`` reads ``/dev/tty`` with echo off, never stdin: stdin belongs to whoever runs us
(the AWS CLI runs ``credential_process`` with a pipe), so a prompt there would hang or read the
wrong thing; with no terminal the caller gets a ``ConfigError`` that names the flag or variable
to use instead.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from cryptography import x509

from ..errors import ConfigError
from ..sigv4x509 import PublicKey

Digest = Literal["SHA256", "SHA384", "SHA512"]
TTY = "/dev/tty"


class KeyBackend(abc.ABC):
    """A private key that signs in place.

    ``sign`` hashes the message with ``digest`` and returns the signature in its wire encoding:
    PKCS#1 v1.5 for RSA, DER ``Ecdsa-Sig-Value`` for EC; an ML-DSA key signs ``message`` itself
    (pure ML-DSA, empty context) and ignores ``digest``. A backend that holds the certificate
    (a PKCS#11 token) sets ``certificate`` and, when it can build one, ``chain``.
    """

    description: str = "key"
    certificate: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()

    @property
    @abc.abstractmethod
    def public_key(self) -> PublicKey:
        """The public half, as ``cryptography`` holds it."""

    @abc.abstractmethod
    def sign(self, message: bytes, digest: Digest = "SHA256") -> bytes:
        """Sign ``message`` (hashed here or in the device) and return the wire encoding."""

    def close(self) -> None:  # noqa: B027 - most backends have nothing to release
        """Release sessions and device handles. Safe to call twice."""

    def __enter__(self) -> KeyBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class KeyOptions:
    """What opening a key may need beyond its reference. Secrets stay out of ``repr``."""

    pkcs11_lib: str | None = None
    reuse_pin: bool = False
    pkcs8_password: str | None = field(default=None, repr=False)
    tpm_key_password: str | None = field(default=None, repr=False)
    no_tpm_key_password: bool = False
    tpm_tcti: str | None = None


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


__all__ = ["Digest", "KeyBackend", "KeyOptions", "PublicKey", "ask_secret"]
