"""``update``'s output: one profile of an AWS shared credentials file, kept fresh.

    >>> text = "# mine\\n[other]\\nregion = eu-west-1\\n"
    >>> print(set_profile_keys(text, "default", {"aws_access_key_id": "ASIAEXAMPLE"}), end="")
    # mine
    [other]
    region = eu-west-1
    <BLANKLINE>
    [default]
    aws_access_key_id = ASIAEXAMPLE

``set_profile_keys`` is the pure text edit: inside ``[profile]`` it replaces the lines of the
given keys (and their indented continuation lines), adds the missing ones after the section's
last line, and leaves every other line, comment, key and profile byte for byte; a missing
section is appended. ``write_profile`` applies it to a file under a lock, writing a temporary
file and renaming it over the old one, mode 0600. ``keep_profile_fresh`` is the ``update``
loop: it writes the profile whenever a ``CredentialKeeper`` holds new credentials, then sleeps
until the keeper's next refresh is due; a failed refresh or write is logged and retried after a
capped, doubling pause, and neither ends the loop.

    >>> import tempfile, threading
    >>> from datetime import datetime, timezone
    >>> from pathlib import Path
    >>> from hwsigner.credentials import Credentials
    >>> from hwsigner.delivery.keeper import CredentialKeeper
    >>> stop = threading.Event()          # set it (e.g. from a signal handler) to end the loop
    >>> def fetch():                      # Session.fetch in real use; here it also ends the loop
    ...     stop.set()
    ...     expiry = datetime(2030, 1, 1, tzinfo=timezone.utc)
    ...     return Credentials("ASIAEXAMPLE0000000", "secret", "token", expiry)
    >>> path = Path(tempfile.mkdtemp(), "credentials")   # credentials_path(os.environ) in use
    >>> keep_profile_fresh(CredentialKeeper(fetch), path, "default", stop)
    >>> print(path.read_text(), end="")
    [default]
    aws_access_key_id = ASIAEXAMPLE0000000
    aws_secret_access_key = secret
    aws_session_token = token
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from .._safe import replace_file
from ..credentials import Credentials, format_time
from ..errors import ConfigError, HwSignerError
from .keeper import CredentialKeeper

log = logging.getLogger("hwsigner")

MIN_PAUSE = 1.0
WRITE_RETRY_CAP = 60.0

_SECTION = re.compile(r"\s*\[\s*([^\]]*?)\s*\]")
_KEY = re.compile(r"([^=:\s][^=:]*?)\s*[=:]")


def credentials_path(env: Mapping[str, str]) -> Path:
    """``AWS_SHARED_CREDENTIALS_FILE``, else ``~/.aws/credentials``."""
    return Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials").expanduser()


def profile_keys(credentials: Credentials) -> dict[str, str]:
    return {
        "aws_access_key_id": credentials.access_key_id,
        "aws_secret_access_key": credentials.secret_access_key,
        "aws_session_token": credentials.session_token,
    }


def set_profile_keys(text: str, profile: str, values: Mapping[str, str]) -> str:
    """``text`` with ``values`` set in ``[profile]``; all other lines unchanged."""
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    start, end = _find_section(lines, profile)
    if start is None:
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += newline
        if lines and lines[-1].strip():
            lines.append(newline)
        lines.append(f"[{profile}]{newline}")
        lines.extend(f"{name} = {value}{newline}" for name, value in values.items())
        return "".join(lines)
    body = lines[start + 1 : end]
    kept: list[str] = []
    pending = dict(values)
    dropping = False
    for line in body:
        if dropping and line[:1] in (" ", "\t") and line.strip():
            continue  # a continuation line of a value being replaced
        dropping = False
        match = _KEY.match(line)
        name = match.group(1).strip().lower() if match and not _is_comment(line) else None
        if name in values:
            dropping = True
            if name in pending:
                kept.append(f"{name} = {pending.pop(name)}{_ending(line, newline)}")
            continue
        kept.append(line)
    insert_at = len(kept)
    while insert_at > 0 and (not kept[insert_at - 1].strip() or _is_comment(kept[insert_at - 1])):
        insert_at -= 1  # new keys go after the last key, before trailing blanks and comments
    if pending and insert_at > 0 and not kept[insert_at - 1].endswith(("\n", "\r")):
        kept[insert_at - 1] += newline
    if pending and insert_at == 0 and not lines[start].endswith(("\n", "\r")):
        lines[start] += newline
    added = [f"{name} = {value}{newline}" for name, value in pending.items()]
    kept[insert_at:insert_at] = added
    return "".join([*lines[: start + 1], *kept, *lines[end:]])


def _find_section(lines: list[str], profile: str) -> tuple[int | None, int]:
    """Index of the ``[profile]`` header (the first one) and of the line after its body."""
    start = None
    for index, line in enumerate(lines):
        match = _SECTION.match(line)
        if not match or _is_comment(line):
            continue
        if start is not None:
            return start, index
        if match.group(1) == profile:
            start = index
    return start, len(lines)


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith(("#", ";"))


def _ending(line: str, default: str) -> str:
    if line.endswith("\r\n"):
        return "\r\n"
    return "\n" if line.endswith("\n") else default


def write_profile(path: Path, profile: str, credentials: Credentials) -> None:
    """Set the profile's three keys in the credentials file at ``path``, atomically."""
    target = Path(os.path.realpath(path))
    directory = target.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(target.with_name(f".{target.name}.hwsigner-lock")):
            try:
                text = target.read_bytes().decode("utf-8")
            except FileNotFoundError:
                text = ""
            _replace(target, set_profile_keys(text, profile, profile_keys(credentials)))
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path} is not UTF-8 text", hint="fix the file or set AWS_SHARED_CREDENTIALS_FILE"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint="check the path and its permissions (AWS_SHARED_CREDENTIALS_FILE)",
        ) from None


def _replace(target: Path, text: str) -> None:
    """Write ``text`` to a temporary file and rename it over ``target``. Called under the lock,
    so a temporary file of ours already there was left by an updater killed mid-write: gone."""
    import stat

    prefix, suffix = f".{target.name}.", ".tmp"
    for name in os.listdir(target.parent):
        if name.startswith(prefix) and name.endswith(suffix) and len(name) == len(prefix) + 12:
            stale = target.parent / name
            with suppress(OSError):
                info = stale.lstat()
                if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid():
                    stale.unlink()
    replace_file(str(target), text.encode("utf-8"), 0o600)  # temporary files named as above


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on a sidecar file, so two updaters never interleave."""
    import fcntl

    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


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


__all__ = [
    "credentials_path",
    "keep_profile_fresh",
    "set_profile_keys",
    "write_and_log",
    "write_profile",
]
