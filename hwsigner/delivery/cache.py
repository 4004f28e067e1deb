"""The on-disk credentials cache behind ``credential-process --cache``.

    >>> import os, tempfile
    >>> cache = CredentialCache.at(tempfile.mkdtemp(), os.environ)  # default: $XDG_CACHE_HOME
    >>> key = cache_key({"role_arn": "arn:aws:iam::111122223333:role/app"}, files=["leaf.pem"])
    >>> cache.get(key) is None                        # the credential_process JSON, or None
    True
    >>> with cache.lock(key):                                         # doctest: +SKIP
    ...     cache.put(key, credentials)

An entry is one file named after the key, mode 0600, in a directory of mode 0700, replaced
atomically. It is used only while more than ``CACHE_REUSE_MARGIN`` of validity remains; an
entry that is unreadable, corrupt, not owned by this user, or readable by others is ignored
(and replaced by the next ``put``), never trusted. The ``lock`` keeps parallel cache misses
from all calling CreateSession at once.

A cache hit must not load ``cryptography`` or a key backend, and is worth keeping cheap: the
AWS CLI runs ``credential_process`` before every command. This module imports nothing a bare
``python`` has not loaded already but ``hwsigner.errors``, ``hwsigner._safe`` (its bounded file
reader) and CPython's SHA-256: not ``json``, ``re`` or ``pathlib``, each of which costs more
than half of a bare interpreter's start-up (docs/performance.md). An entry in the layout
``put`` writes is read without ``json``; any other text is read with ``_safe.load_json`` (bounded
size and depth), in full.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from contextlib import contextmanager, suppress  # loaded at start-up already

from .._safe import read_file, read_reference
from ..errors import ConfigError
from . import CACHE_REUSE_MARGIN

# CPython's own SHA-256: hashlib would load OpenSSL, 2 ms of a cache hit's start-up.
try:
    from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]  # 3.12+
except ImportError:
    try:
        from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    except ImportError:  # pragma: no cover - other Pythons
        from hashlib import sha256  # type: ignore[assignment,unused-ignore]

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from pathlib import Path
    from typing import Any

    from ..credentials import Credentials

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # as hwsigner.credentials writes it
ISO_LAYOUT = "0000-00-00T00:00:00Z"  # its shape: 0 for a digit
PROCESS_FIELDS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
FORMAT_VERSION = 1
MAX_ENTRY = 64 * 1024


def default_directory(env: Mapping[str, str]) -> str:
    """``$XDG_CACHE_HOME/hwsigner``, else ``~/.cache/hwsigner``."""
    base = env.get("XDG_CACHE_HOME")
    if base and os.path.isabs(base):
        return os.path.join(base, "hwsigner")
    return os.path.join(os.path.expanduser("~"), ".cache", "hwsigner")


def cache_key(fields: Mapping[str, object], files: Iterable[str] = ()) -> str:
    """A hex SHA-256 over every input that changes the answer: ``fields`` (the settings), and
    the content of ``files``, so a renewed certificate at the same path is a new key. A file that
    cannot be read still yields a key: the request that follows reports the problem."""
    digest = sha256()
    # repr keeps different values apart (None from "None", 1 from "1"), and needs no json
    digest.update(repr(sorted(fields.items())).encode())
    for path in files:
        digest.update(b"\0file\0" + path.encode())
        try:
            digest.update(sha256(read_reference(path)).digest())
        except (OSError, ValueError) as exc:
            digest.update(f"unreadable:{getattr(exc, 'errno', None) or exc}".encode())
    return str(digest.hexdigest())


class CredentialCache:
    """A directory of cached credential sets, one file per cache key."""

    __slots__ = ("directory",)

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)

    def __repr__(self) -> str:
        return f"CredentialCache({self.directory!r})"

    @classmethod
    def at(
        cls, directory: str | os.PathLike[str] | None, env: Mapping[str, str]
    ) -> CredentialCache:
        if directory:
            return cls(os.path.expanduser(os.fspath(directory)))
        return cls(default_directory(env))

    def entry_path(self, key: str) -> Path:
        from pathlib import Path

        return Path(self._file(key, ".json"))

    def _file(self, key: str, suffix: str) -> str:
        return os.path.join(self.directory, key + suffix)

    def get(self, key: str, now: float | None = None) -> str | None:
        """The cached ``credential_process`` JSON for ``key``, if it is trustworthy and lasts
        more than ``CACHE_REUSE_MARGIN`` past ``now`` (seconds since the epoch)."""
        if not self._directory_usable(create=False):
            return None
        try:
            answer, expiration = entry_answer(read_private_file(self._file(key, ".json")), key)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            _debug("cache: ignoring entry %s: %s", key[:12], exc)
            return None
        soon = time.time() if now is None else now
        if expiration <= time.strftime(ISO_FORMAT, time.gmtime(soon + CACHE_REUSE_MARGIN)):
            _debug("cache: entry %s expires too soon", key[:12])
            return None
        _debug("cache: hit %s, valid until %s", key[:12], expiration)
        return answer

    def put(self, key: str, credentials: Credentials) -> None:
        """Store ``credentials`` under ``key``: a new 0600 file renamed over the old one."""
        import json
        import tempfile

        self._directory_usable(create=True)
        entry = {
            "format": FORMAT_VERSION,
            "key": key,
            "credentials": json.loads(credentials.to_process_json()),
        }
        temp = None
        try:
            fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w") as f:  # mkstemp creates the file with mode 0600
                json.dump(entry, f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, self._file(key, ".json"))
            temp = None
        except OSError as exc:
            raise ConfigError(
                f"cannot write the cache entry in {self.directory}: {exc.strerror or exc}",
                hint="check the disk and --cache-dir",
            ) from None
        finally:
            if temp is not None:
                with suppress(OSError):
                    os.unlink(temp)

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """An exclusive ``flock`` for ``key`` while the ``with`` block runs: one CreateSession
        for many parallel misses."""
        import fcntl

        self._directory_usable(create=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self._file(key, ".lock"), flags, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot lock the cache entry in {self.directory}: {exc.strerror or exc}",
                hint="pass --cache-dir with a directory of your own",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _directory_usable(self, *, create: bool) -> bool:
        """Whether the directory exists and is ours; make it 0700. Raises for a foreign one."""
        if create:
            try:
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create the cache directory {self.directory}: {exc.strerror}",
                    hint="pass --cache-dir with a directory you can write",
                ) from None
        try:
            info = os.lstat(self.directory)
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise ConfigError(
                f"the cache directory {self.directory} is not a directory owned by you",
                hint="pass --cache-dir with a directory of your own",
            )
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(self.directory, 0o700)
        return True


def entry_answer(text: str, key: str) -> tuple[str, str]:
    """The ``credential_process`` JSON an entry for ``key`` holds, and its ``Expiration``;
    ValueError for anything else.

    An entry as ``put`` writes it, with plain values, is read here without ``json``; any other
    text (escaped values, other spacing, damage) is read with ``json`` and checked in full.
    """
    head = f'{{"format":{FORMAT_VERSION},"key":"{key}","credentials":'
    if text.startswith(head) and text.endswith("}"):
        answer = text[len(head) : -1]
        expiration = plain_process_expiration(answer)
        if expiration is not None:
            return answer, expiration
    import json

    from .._safe import load_json

    data = load_json(text)
    if not isinstance(data, dict):
        raise ValueError("not a cache entry")
    if data.get("format") != FORMAT_VERSION or data.get("key") != key:
        raise ValueError("written for another key or format")
    expiration = checked_process_json(data["credentials"])
    return json.dumps(data["credentials"], separators=(",", ":")), expiration


def plain_process_expiration(text: str) -> str | None:
    """The ``Expiration`` of ``text`` if it is a ``credential_process`` object in the compact
    layout ``Credentials.to_process_json`` writes, with values JSON writes as they are (printable
    ASCII, no quote or backslash: that makes the split exact); None otherwise."""
    head = '{"Version":1,"'
    if not (text.startswith(head) and text.endswith('"}')):
        return None
    fields = {}
    for part in text[len(head) : -2].split('","'):
        name, colon, value = part.partition('":"')
        if not (colon and value and value.isascii() and value.isprintable()):
            return None
        if '"' in value or "\\" in value:
            return None
        fields[name] = value
    if tuple(fields) != PROCESS_FIELDS or not is_utc_time(fields["Expiration"]):
        return None
    return fields["Expiration"]


def is_utc_time(text: str) -> bool:
    """Whether ``text`` is a time in the one form ``ISO_FORMAT`` writes."""
    if len(text) != len(ISO_LAYOUT):
        return False
    pairs = zip(text, ISO_LAYOUT, strict=True)
    return all((c in "0123456789") if shape == "0" else c == shape for c, shape in pairs)


def checked_process_json(data: Any) -> str:
    """The ``Expiration`` of a well-formed ``credential_process`` object; ValueError if not.
    (Expirations in one fixed UTC form compare as strings: a cache hit needs no ``datetime``.)"""
    if not isinstance(data, dict) or data.get("Version") != 1:
        raise ValueError("not credential_process JSON")
    for name in PROCESS_FIELDS:
        if not isinstance(data.get(name), str) or not data[name]:
            raise ValueError(f"{name} is missing")
    if not is_utc_time(data["Expiration"]):
        raise ValueError("Expiration is not in YYYY-MM-DDTHH:MM:SSZ form")
    return str(data["Expiration"])


def read_private_file(path: str | os.PathLike[str]) -> str:
    """Read a regular file owned by this user that no one else can read or write.

    ValueError names what is wrong with a file that exists but must not be trusted.
    """
    return read_file(path, MAX_ENTRY, private=True).decode("utf-8", errors="replace")


def _debug(message: str, *args: object) -> None:
    """Log only if ``logging`` is loaded (``--debug`` loads it; a cache hit does not)."""
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger("hwsigner").debug(message, *args)


__all__ = ["CredentialCache", "cache_key"]
