"""Keep one set of credentials fresh for many readers: ``serve``, ``update`` and boto3 sessions.

    >>> session = Session.open(settings)                              # doctest: +SKIP
    >>> keeper = CredentialKeeper(session.fetch, initial=session.fetch())  # doctest: +SKIP
    >>> keeper.get()         # the same credentials until their refresh point  # doctest: +SKIP
    Credentials(access_key_id='ASIA...', expiration='...')

The rules, whatever the number of threads asking (the margins: ``hwsigner.delivery``):

- new credentials get a refresh point at a random moment between half their lifetime and
  ``refresh_margin`` before expiry (at half the lifetime when it is under twice the margin), so
  clients see more than the margin left and a fleet spreads its CreateSessions over the
  quota; they are *usable* while more than ``expiry_margin`` remains (shrunk to a quarter of
  the lifetime for short-lived credentials);
- before their refresh point, credentials are returned as they are;
- after it, one caller refreshes (single flight); the others get the current credentials at
  once while they are usable, or wait for that caller's result when they are not;
- a failed refresh keeps the last good credentials while they are usable, and the next attempt
  waits a capped, doubling, jittered pause, so a failing or throttling service is not hammered;
- when nothing usable is left, ``get`` raises: never empty or expired credentials.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from ..credentials import Credentials, format_time, utcnow
from ..errors import HwSignerError
from . import KEEPER_REFRESH_MARGIN, LAST_GOOD_MARGIN

log = logging.getLogger("hwsigner")

Fetch = Callable[[], Credentials]
Clock = Callable[[], datetime]
Jitter = Callable[[float, float], float]  # a number between the two (random.uniform)

REFRESH_MARGIN = timedelta(seconds=KEEPER_REFRESH_MARGIN)
EXPIRY_MARGIN = timedelta(seconds=LAST_GOOD_MARGIN)
RETRY_BASE = timedelta(seconds=1)
RETRY_CAP = timedelta(seconds=60)
MIN_PAUSE = 0.05  # seconds: a loop never spins


class CredentialKeeper:
    """The current credentials and the one-at-a-time refresh of them; safe across threads."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        initial: Credentials | None = None,
        refresh_margin: timedelta = REFRESH_MARGIN,
        expiry_margin: timedelta = EXPIRY_MARGIN,
        retry_base: timedelta = RETRY_BASE,
        retry_cap: timedelta = RETRY_CAP,
        clock: Clock = utcnow,
        jitter: Jitter = random.uniform,
        name: str = "",
    ) -> None:
        self.refresh_margin = refresh_margin
        self.expiry_margin = min(expiry_margin, refresh_margin / 2)
        self._fetch = fetch
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._clock = clock
        self._jitter = jitter
        self.name = f"role {name}: " if name else ""  # the prefix of its log lines
        self._refresh_lock = threading.Lock()
        self._current = initial
        self._updated = clock() if initial is not None else None
        self._due = self._refresh_point(initial, self._updated)
        self._attempts = 0
        self._failures = 0
        self._error: HwSignerError | None = None
        self._retry_at: datetime | None = None
        self.refreshes = {"success": 0, "failure": 0}  # CreateSession results, for metrics
        self.fetch_seconds: float | None = None  # how long the latest fetch took

    @property
    def current(self) -> Credentials | None:
        """The last good credentials, usable or not (``None`` before the first success)."""
        return self._current

    @property
    def last_updated(self) -> datetime | None:
        """When the current credentials were obtained."""
        return self._updated

    @property
    def last_error(self) -> HwSignerError | None:
        """Why the latest refresh failed; ``None`` once one succeeds."""
        return self._error

    def get(self) -> Credentials:
        """Usable credentials, refreshed as the rules say; raises when there are none."""
        now = self._clock()
        fresh = self._fresh(now)
        if fresh is not None:
            return fresh
        seen = self._attempts
        if self._refresh_lock.acquire(blocking=False):
            try:
                self._refresh_if_due(seen)
            finally:
                self._refresh_lock.release()
            return self._usable_or_raise()
        usable = self._usable(now)
        if usable is not None:
            return usable  # another caller is refreshing
        with self._refresh_lock:
            self._refresh_if_due(seen)
        return self._usable_or_raise()

    def fresh(self) -> Credentials | None:
        """The current credentials while no refresh is due, else None; never waits (for an
        event loop, which calls ``get`` on a thread only when this gives None)."""
        return self._fresh(self._clock())

    def usable(self) -> Credentials | None:
        """The current credentials while they may be handed out (readiness), else None."""
        return self._usable(self._clock())

    def seconds_to_refresh(self) -> float:
        """How long until ``get`` will try to refresh (0 when due): for loops that sleep."""
        now = self._clock()
        due = self._due or now
        if self._retry_at is not None:
            due = max(due, self._retry_at)
        return max((due - now).total_seconds(), 0.0)

    def _margins(self, credentials: Credentials) -> tuple[timedelta, timedelta]:
        """(refresh margin, expiry margin), shrunk for credentials that live only briefly."""
        lifetime = credentials.expiration - (self._updated or credentials.expiration)
        refresh = min(self.refresh_margin, lifetime / 2)
        return refresh, min(self.expiry_margin, refresh / 2)

    def _refresh_point(
        self, fresh: Credentials | None, updated: datetime | None
    ) -> datetime | None:
        """When ``fresh``, obtained at ``updated``, is to be refreshed (the jittered window)."""
        if fresh is None or updated is None:
            return None
        lifetime = fresh.expiration - updated
        if lifetime < 2 * self.refresh_margin:
            return updated + lifetime / 2
        early, late = lifetime / 2, lifetime - self.refresh_margin
        return updated + timedelta(
            seconds=self._jitter(early.total_seconds(), late.total_seconds())
        )

    def _fresh(self, now: datetime) -> Credentials | None:
        """The current credentials if they need no refresh yet."""
        if self._due is not None and now < self._due:
            return self._current
        return None

    def _usable(self, now: datetime) -> Credentials | None:
        """The current credentials if they may still be handed out."""
        current = self._current
        if current is not None and current.remaining(now) > self._margins(current)[1]:
            return current
        return None

    def _refresh_if_due(self, seen: int) -> None:
        """Refresh unless another caller already tried since ``seen``, or a retry is not due."""
        now = self._clock()
        if self._attempts != seen or self._fresh(now) is not None:
            return
        if self._retry_at is not None and now < self._retry_at:
            return
        self._attempts += 1
        started = time.perf_counter()
        try:
            fresh = self._fetch()
        except HwSignerError as exc:
            self.fetch_seconds = time.perf_counter() - started
            self.refreshes["failure"] += 1
            self._failed(exc, now)
            return
        self.fetch_seconds = time.perf_counter() - started
        self.refreshes["success"] += 1
        self._current, self._updated = fresh, self._clock()
        self._due = self._refresh_point(fresh, self._updated)
        self._failures, self._error, self._retry_at = 0, None, None
        log.info(
            "%snew credentials %s, valid until %s",
            self.name,
            fresh.access_key_id,
            format_time(fresh.expiration),
        )

    def _failed(self, error: HwSignerError, now: datetime) -> None:
        self._failures += 1
        self._error = error
        longest = min(self._retry_cap, self._retry_base * 2 ** (self._failures - 1))
        pause = timedelta(
            seconds=self._jitter(longest.total_seconds() / 2, longest.total_seconds())
        )
        self._retry_at = now + pause
        usable = self._usable(now)
        if usable is not None:
            until = format_time(usable.expiration)
            keeping = f"keeping the current credentials, valid until {until}"
        else:
            keeping = "no valid credentials left"
        log.warning(
            "%srefreshing credentials failed: %s; %s; next try in %.0fs",
            self.name,
            error,
            keeping,
            pause.total_seconds(),
        )

    def _usable_or_raise(self) -> Credentials:
        usable = self._usable(self._clock())
        if usable is not None:
            return usable
        reason = f": {self._error}" if self._error else ""
        raise HwSignerError(
            f"no valid credentials{reason}",
            hint=self._error.hint if self._error else None,
        )


def keep_fresh(
    keeper: CredentialKeeper, stop: threading.Event, changed: Callable[[], None]
) -> None:
    """Refresh at each refresh point (and retry after each pause) until ``stop`` is set, so
    readers rarely wait; ``changed`` is called after every attempt (readiness, metrics)."""
    while not stop.wait(max(keeper.seconds_to_refresh(), MIN_PAUSE)):
        with contextlib.suppress(HwSignerError):  # logged by the keeper, which keeps the last good
            keeper.get()
        changed()


__all__ = ["CredentialKeeper", "keep_fresh"]
