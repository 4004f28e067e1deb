"""One logged-in session per token and process, shared by every key on that token.

    >>> from hwsigner.keys.pkcs11_token import COUNTERS, TokenSession
    >>> session = TokenSession.open(module, token)                    # doctest: +SKIP
    >>> session.login(uri)                                            # doctest: +SKIP
    >>> COUNTERS.logins                                               # doctest: +SKIP
    1

Login state belongs to the application and the token, not to one session, so every key on a
token shares one ``TokenSession``: N signatures cost one login. A wrong PIN is reported once and
never retried (tokens lock after a few). A session or token that goes away is reopened once.
``COUNTERS`` counts logins and signatures for tests and benchmarks.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import pkcs11
from pkcs11 import exceptions as p11
from pkcs11.constants import TokenFlag

from ..errors import KeySourceError, PasswordError
from .pkcs11_module import Module, describe_token, failure, present_tokens
from .pkcs11_pin import ask_pin, pin_without_asking
from .pkcs11_uri import Pkcs11Uri

log = logging.getLogger("hwsigner")
T = TypeVar("T")

# The session or the token went away: reopen once, then report.
GONE = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.DeviceRemoved,
    p11.TokenNotPresent,
    p11.DeviceError,
    p11.UserNotLoggedIn,
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
    """The process's session with one token; ``open`` shares it between keys on that token."""

    _registry: ClassVar[dict[tuple[str, bytes, str], TokenSession]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, module: Module, token: Any, session: Any) -> None:
        self.module = module
        self.token = token
        self.session = session
        self.logged_in = False
        self.generation = 0  # bumped by every reopen: object handles must be found again
        self.lock = threading.RLock()
        self.users = 1
        self._pin: str | None = None  # kept in memory only, to log in again after a reopen

    @property
    def name(self) -> str:
        return describe_token(self.token)

    @property
    def user_pin(self) -> str | None:
        return self._pin

    @classmethod
    def open(cls, module: Module, token: Any) -> TokenSession:
        key = (module.path, bytes(token.serial), token.label)
        with cls._registry_lock:
            shared = cls._registry.get(key)
            if shared is not None:
                shared.users += 1
                return shared
            try:
                session = token.open()
            except p11.PKCS11Error as exc:
                raise failure(exc, f"opening a session with token {describe_token(token)}") from exc
            opened = cls(module, token, session)
            cls._registry[key] = opened
            return opened

    def login(self, uri: Pkcs11Uri) -> None:
        """Log in once for this process. The PIN is asked for only now, and tried once."""
        with self.lock:
            if self.logged_in:
                return
            pin = pin_without_asking(uri, os.environ)
            if pin is None and not self.token.flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH:
                pin = ask_pin(f"PIN for token {self.token.label.strip()!r}")
            self._switch_to_login_session(pin)

    def _switch_to_login_session(self, pin: str | None) -> None:
        COUNTERS.logins += 1
        try:
            session = self.token.open(user_pin=pin if pin is not None else pkcs11.PROTECTED_AUTH)
        except p11.UserAlreadyLoggedIn:
            session = self.token.open()  # another part of this process logged in already
        except (
            p11.PinIncorrect,
            p11.PinLocked,
            p11.PinExpired,
            p11.PinInvalid,
            p11.PinLenRange,
        ) as exc:
            raise self._pin_refused(exc) from None
        except p11.PKCS11Error as exc:
            raise failure(exc, f"logging in to token {self.name}") from exc
        old, self.session = self.session, session
        self._close_quietly(old)  # after the new one: closing the last session logs out
        self.generation += 1  # objects found through the old session must be found again
        self.logged_in = True
        self._pin = pin

    def _pin_refused(self, exc: p11.PKCS11Error) -> PasswordError:
        flags = self._pin_flags()
        if isinstance(exc, p11.PinLocked) or "locked" in flags:
            return PasswordError(
                f"the user PIN of token {self.name} is locked",
                hint="unblock it with the SO PIN or PUK (e.g. pkcs11-tool --unlock-pin)",
            )
        if isinstance(exc, p11.PinExpired):
            return PasswordError(
                f"the user PIN of token {self.name} has expired", hint="change the PIN first"
            )
        reported = f" (the token reports: {', '.join(flags)})" if flags else ""
        return PasswordError(
            f"wrong PIN for token {self.name}{reported}",
            hint="not retried automatically, to keep the token from locking; check the PIN source",
        )

    def _pin_flags(self) -> list[str]:
        try:
            flags = self.token.slot.get_token().flags
        except p11.PKCS11Error:
            return []
        names = (
            (TokenFlag.USER_PIN_LOCKED, "locked"),
            (TokenFlag.USER_PIN_FINAL_TRY, "final try"),
            (TokenFlag.USER_PIN_COUNT_LOW, "PIN count low"),
        )
        return [name for flag, name in names if flags & flag]

    def run(self, operation: Callable[[Any], T], doing: str) -> T:
        """Run ``operation(session)``; if the session or token went away, reopen once."""
        with self.lock:
            try:
                return operation(self.session)
            except GONE as exc:
                log.debug("token %s: %s while %s; reopening", self.name, type(exc).__name__, doing)
            self.reopen()
            try:
                return operation(self.session)
            except GONE as exc:
                raise KeySourceError(
                    f"token {self.name} went away while {doing} ({type(exc).__name__})",
                    hint="check the device is plugged in and not used by another program",
                ) from exc

    def reopen(self) -> None:
        """Find the token again (its slot may have changed), open a session, log in again."""
        COUNTERS.reopens += 1
        self._close_quietly(self.session)
        serial, label = bytes(self.token.serial), self.token.label
        again = [t for t in present_tokens(self.module) if (t.serial, t.label) == (serial, label)]
        if not again:
            raise KeySourceError(
                f"token {self.name} went away and did not come back",
                hint="plug the device in again",
            )
        self.token = again[0]
        try:
            self.session = self.token.open()
        except p11.PKCS11Error as exc:
            raise failure(exc, f"reopening a session with token {self.name}") from exc
        self.generation += 1
        if self.logged_in:
            self.logged_in = False
            self._switch_to_login_session(self._pin)

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
            self._registry.pop((self.module.path, bytes(self.token.serial), self.token.label), None)
        with self.lock:
            self._close_quietly(self.session)
            self.logged_in = False
            self._pin = None

    @staticmethod
    def _close_quietly(session: Any) -> None:
        try:
            session.close()
        except p11.PKCS11Error as exc:
            log.debug("closing a PKCS#11 session: %s", type(exc).__name__)
