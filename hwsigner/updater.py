"""The ``update`` loop: keep one profile of the shared credentials file fresh.

    >>> keeper = CredentialKeeper(fetch, initial=fetch(), refresh_margin=timedelta(minutes=5))
    ...                                                               # doctest: +SKIP
    >>> stop = threading.Event()          # set it (e.g. from a signal handler) to end the loop
    >>> keep_profile_fresh(keeper, credentials_path(os.environ), "default", stop)  # doctest: +SKIP

Each round writes the profile when the keeper holds new credentials, then sleeps until the
keeper's next refresh is due. A failed refresh is logged by the keeper and retried after a
capped, doubling pause; a failed write likewise. Neither ends the loop.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from .credentials import Credentials, format_time
from .credfile import write_profile
from .errors import HwSignerError
from .refresher import CredentialKeeper

log = logging.getLogger("hwsigner")

MIN_PAUSE = 1.0
WRITE_RETRY_CAP = 60.0


def write_and_log(path: Path, profile: str, credentials: Credentials) -> None:
    write_profile(path, profile, credentials)
    log.info(
        "wrote profile [%s] of %s, valid until %s",
        profile,
        path,
        format_time(credentials.expiration),
    )


def keep_profile_fresh(
    keeper: CredentialKeeper, path: Path, profile: str, stop: threading.Event
) -> None:
    """Write the profile now and again before each expiry, until ``stop`` is set."""
    written: Credentials | None = None
    write_failures = 0
    while not stop.is_set():
        try:
            credentials: Credentials | None = keeper.get()
        except HwSignerError:
            credentials = None  # the keeper has logged why, and knows when to try again
        if credentials is not None and credentials is not written:
            try:
                write_and_log(path, profile, credentials)
            except HwSignerError as exc:
                write_failures += 1
                pause = min(WRITE_RETRY_CAP, MIN_PAUSE * 2 ** (write_failures - 1))
                log.warning("writing %s failed: %s; next try in %ds", path, exc, pause)
                stop.wait(pause)
                continue
            written, write_failures = credentials, 0
        stop.wait(max(keeper.seconds_to_refresh(), MIN_PAUSE))
