"""The one login path: a session per token and process, and where its PIN comes from.

    >>> from hwsigner.keys.pkcs11.session import COUNTERS, TokenSession
    >>> session = TokenSession.open(module, token)                    # doctest: +SKIP
    >>> session.login(uri)                                            # doctest: +SKIP

Login state belongs to the application and the token, not to one session, so every key on a
token shares one read-only ``TokenSession`` (writing uses a read-write one that logs in the same
way): N signatures cost one login. The PIN comes from the URI's ``pin-value``, else its
``pin-source`` (``file:PATH``: a file's first line; ``|/absolute/command args``: the first line
it prints, no shell), else ``HWSIGNER_PKCS11_PIN``, else ``/dev/tty`` (never stdin). A wrong PIN
is tried once, one message, never retried (tokens lock). A lost session is reopened once.
``COUNTERS`` counts logins and signatures for tests and benchmarks.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import pkcs11
from pkcs11 import exceptions as p11
from pkcs11.constants import TokenFlag

from ..._safe import read_user_file
from ...errors import ConfigError, KeySourceError, PasswordError
from ..backend import ask_secret
from .module import Module, describe_token, failure, open_session, token_again
from .uri import Pkcs11Uri

log = logging.getLogger("hwsigner")
T = TypeVar("T")

ENV_PIN = "HWSIGNER_PKCS11_PIN"
COMMAND_TIMEOUT = 120  # seconds; a command may wait for its user (a pinentry, a vault unlock)
PIN_ERRORS = (p11.PinIncorrect, p11.PinLocked, p11.PinExpired, p11.PinInvalid, p11.PinLenRange)
PIN_FLAGS = (
    (TokenFlag.USER_PIN_FINAL_TRY, "final try"),
    (TokenFlag.USER_PIN_COUNT_LOW, "PIN count low"),
)
# The session or the token went away: reopen once, then report.
GONE = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.DeviceRemoved,
    p11.TokenNotPresent,
    p11.DeviceError,
    p11.UserNotLoggedIn,
)


def pin_for(uri: Pkcs11Uri, token: Any) -> str | None:
    """The PIN the URI, the environment or the user gives; None for a PIN pad."""
    if uri.pin_value is not None:
        return uri.pin_value
    if uri.pin_source is not None:
        return pin_from_source(uri.pin_source)
    if os.environ.get(ENV_PIN):
        return os.environ[ENV_PIN]
    if token.flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH:
        return None
    return ask_secret(
        f"PIN for token {token.label.strip()!r}: ",
        instead=f"pin-value or pin-source in the URI, or the {ENV_PIN} environment variable",
    )


def pin_from_source(source: str) -> str:
    """The first line of a file or of what a command prints; errors name it, never the PIN."""
    command = _argv(source[1:]) if source.startswith("|") else None
    path = source.removeprefix("file://" if source.startswith("file://") else "file:")
    if command is None and not path.startswith("/"):
        raise ConfigError(
            f"unsupported pin-source {source!r}",
            hint="use pin-source=file:/absolute/path or pin-source=|/absolute/command",
        )
    name = f"the PIN command {command[0]}" if command else f"the PIN file {path}"
    try:
        text = (_run(command, name) if command else _first_line_of(path)).decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot use {name}: {exc.strerror}", hint="check pin-source") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{name} gave no UTF-8 text") from None
    pin = text.splitlines()[0] if text else ""
    if not pin:
        raise ConfigError(f"{name} gave an empty PIN", hint="put the PIN on its first line")
    return pin


def _argv(command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError:
        argv = []
    if not argv or not argv[0].startswith("/"):
        raise ConfigError(
            "pin-source=| needs an absolute command path",
            hint="e.g. pin-source=|/usr/local/bin/get-pin (URI-encode spaces as %20)",
        )
    return argv


def _run(argv: list[str], name: str) -> bytes:
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{name} did not finish in {COMMAND_TIMEOUT} s") from None
    if done.returncode != 0:
        raise ConfigError(
            f"{name} failed with exit status {done.returncode}", hint="run it by hand to see why"
        )
    return bytes(done.stdout)


def _first_line_of(path: str) -> bytes:
    return read_user_file(path, "PIN", "pin-source", 4096).split(b"\n")[0]


def pin_refused(exc: p11.PKCS11Error, token: Any) -> PasswordError:
    """The one message for a PIN the token refused (at login or for one signature)."""
    name = describe_token(token)
    try:
        flags = token.slot.get_token().flags
    except p11.PKCS11Error:
        flags = 0
    if isinstance(exc, p11.PinLocked) or flags & TokenFlag.USER_PIN_LOCKED:
        return PasswordError(
            f"the user PIN of token {name} is locked",
            hint="unblock it with the SO PIN or PUK (e.g. pkcs11-tool --unlock-pin)",
        )
    if isinstance(exc, p11.PinExpired):
        return PasswordError(f"the user PIN of token {name} has expired", hint="change it first")
    reports = [text for flag, text in PIN_FLAGS if flags & flag]
    reported = f" (the token reports: {', '.join(reports)})" if reports else ""
    return PasswordError(
        f"wrong PIN for token {name}{reported}",
        hint="not retried automatically, to keep the token from locking; check the PIN source",
    )


@dataclass
class Counters:
    """What this process asked of its tokens (read by tests and the benchmark)."""

    logins: int = 0
    context_logins: int = 0
    signatures: int = 0
    reopens: int = 0
    by_mechanism: dict[str, int] = field(default_factory=dict)

    def signed(self, mechanism: str) -> None:
        self.signatures += 1
        self.by_mechanism[mechanism] = self.by_mechanism.get(mechanism, 0) + 1


COUNTERS = Counters()


class TokenSession:
    """The process's session with one token; ``open`` shares it between users of that token."""

    _registry: ClassVar[dict[tuple[str, bytes, str, bool], TokenSession]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, module: Module, token: Any, session: Any, *, rw: bool = False) -> None:
        self.module = module
        self.token = token
        self.session = session
        self.rw = rw
        self.logged_in = False
        self.generation = 0  # bumped by every reopen: object handles must be found again
        self.lock = threading.RLock()
        self.users = 1
        self.user_pin: str | None = None  # in memory only, to log in again after a reopen

    @property
    def name(self) -> str:
        return describe_token(self.token)

    @property
    def _key(self) -> tuple[str, bytes, str, bool]:
        return (self.module.path, bytes(self.token.serial), self.token.label, self.rw)

    @classmethod
    def open(cls, module: Module, token: Any, *, rw: bool = False) -> TokenSession:
        """The shared session with ``token`` (read-only for signing, ``rw`` for writing)."""
        with cls._registry_lock:
            shared = cls._registry.get((module.path, bytes(token.serial), token.label, rw))
            if shared is not None:
                shared.users += 1
                return shared
            opened = cls(module, token, open_session(token, rw), rw=rw)
            cls._registry[opened._key] = opened
            return opened

    def login(self, uri: Pkcs11Uri) -> None:
        """Log in once for this process. The PIN is asked for only now, and tried once."""
        with self.lock:
            if not self.logged_in:
                self._login_with(pin_for(uri, self.token))

    def _login_with(self, pin: str | None) -> None:
        COUNTERS.logins += 1
        try:
            session = self.token.open(
                rw=self.rw, user_pin=pin if pin is not None else pkcs11.PROTECTED_AUTH
            )
        except p11.UserAlreadyLoggedIn:
            session = self.token.open(rw=self.rw)  # another part of this process logged in
        except PIN_ERRORS as exc:
            raise pin_refused(exc, self.token) from None
        except p11.PKCS11Error as exc:
            raise failure(exc, f"logging in to token {self.name}") from exc
        old, self.session = self.session, session
        _close_quietly(old)  # after the new one: closing the last session logs out
        self.generation += 1  # objects found through the old session must be found again
        self.logged_in = True
        self.user_pin = pin

    def run(self, operation: Callable[[Any], T], doing: str) -> T:
        """Run ``operation(session)``; if the session or token went away, reopen once."""
        with self.lock:
            for reopened in (False, True):
                try:
                    return operation(self.session)
                except GONE as exc:
                    if reopened:
                        raise KeySourceError(
                            f"token {self.name} went away while {doing} ({type(exc).__name__})",
                            hint="check the device is plugged in and not used by another program",
                        ) from exc
                    log.debug("token %s: %s while %s", self.name, type(exc).__name__, doing)
                except p11.PKCS11Error as exc:
                    raise failure(exc, doing) from exc
                self.reopen()
            raise AssertionError("unreachable")

    def reopen(self) -> None:
        """Find the token again (its slot may have changed), open a session, log in again."""
        COUNTERS.reopens += 1
        _close_quietly(self.session)
        self.token = token_again(self.module, self.token)
        self.session = open_session(self.token, self.rw)
        self.generation += 1
        if self.logged_in:
            self.logged_in = False
            self._login_with(self.user_pin)

    def mechanisms(self) -> frozenset[int]:
        """The token's mechanisms; none when it does not list them."""
        try:
            return frozenset(int(m) for m in self.token.slot.get_mechanisms())
        except p11.PKCS11Error as exc:
            log.debug("token %s lists no mechanisms: %s", self.name, type(exc).__name__)
            return frozenset()

    def acquire(self) -> None:
        """One more user of this session (each key and each listed certificate is one)."""
        with self._registry_lock:
            self.users += 1

    def release(self) -> None:
        """One user fewer; the last one logs out and closes the session."""
        with self._registry_lock:
            self.users -= 1
            if self.users > 0:
                return
            self._registry.pop(self._key, None)
        with self.lock:
            _close_quietly(self.session)
            self.logged_in = False
            self.user_pin = None


def _close_quietly(session: Any) -> None:
    try:
        session.close()
    except p11.PKCS11Error as exc:
        log.debug("closing a PKCS#11 session: %s", type(exc).__name__)


__all__ = [
    "COUNTERS", "PIN_ERRORS", "Counters", "TokenSession", "pin_for", "pin_from_source",
    "pin_refused",
]  # fmt: skip
