"""The on-disk credentials cache behind ``credential-process --cache``.

    >>> import os, tempfile
    >>> cache = CredentialCache.at(tempfile.mkdtemp(), os.environ)  # default: $XDG_CACHE_HOME
    >>> key = cache_key({"role_arn": "arn:aws:iam::111122223333:role/app"}, files=["leaf.pem"])
    >>> cache.get(key) is None                        # the credential_process JSON, or None
    True
    >>> from datetime import datetime, timezone
    >>> from hwsigner.credentials import Credentials
    >>> expiry = datetime(2030, 1, 1, tzinfo=timezone.utc)
    >>> credentials = Credentials("ASIAEXAMPLE0000000", "secret", "token", expiry)
    >>> with cache.lock(key):                         # one CreateSession for parallel misses
    ...     cache.put(key, credentials)

An entry is one file named after the key, mode 0600, in a directory of mode 0700, replaced
atomically. It is reused while more than min(``CACHE_REUSE_MARGIN``, half its lifetime) remains
(``put`` writes that moment in it: ``reuse_until``); ``get(key, stale=True)``, for when a refresh
fails, while more than ``LAST_GOOD_MARGIN`` remains. An entry that is unreadable, corrupt, not
owned by this user, or readable by others is ignored (and replaced), never trusted. ``lock``
keeps parallel misses from all calling CreateSession at once.

A cache hit must stay cheap (the AWS CLI runs ``credential_process`` before every command): this
module imports nothing a bare ``python`` has not loaded but ``hwsigner.errors``,
``hwsigner._safe`` and CPython's SHA-256 (not ``json``, ``re``, ``pathlib`` or ``contextlib``:
docs/performance.md). An entry in the layout ``put`` writes is read without ``json``; any other
text with ``_safe.load_json`` (bounded size and depth), in full.
"""

from __future__ import annotations

import os
import stat
import time

from .._log import debug
from .._safe import read_file, read_reference, replace_file
from ..errors import ConfigError
from . import LAST_GOOD_MARGIN
from .cache_entry import FORMAT_VERSION, entry_answer, reuse_until

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
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from ..credentials import Credentials

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # as hwsigner.credentials writes it
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

    def get(self, key: str, now: float | None = None, *, stale: bool = False) -> str | None:
        """The cached ``credential_process`` JSON for ``key``, if it is trustworthy and due for
        reuse at ``now`` (seconds since the epoch); with ``stale``, while it is still good to
        hand out when a refresh has failed."""
        if not self._directory_usable(create=False):
            return None
        try:
            text = read_private_file(self._file(key, ".json"))
            answer, expiration, reuse_until = entry_answer(text, key)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            debug("cache: ignoring entry %s: %s", key[:12], exc)
            return None
        moment = time.time() if now is None else now
        if stale:
            good = expiration > time.strftime(ISO_FORMAT, time.gmtime(moment + LAST_GOOD_MARGIN))
        else:
            good = moment < reuse_until
        if not good:
            debug("cache: entry %s expires too soon", key[:12])
            return None
        debug("cache: hit %s, valid until %s", key[:12], expiration)
        return answer

    def put(self, key: str, credentials: Credentials, now: float | None = None) -> None:
        """Store ``credentials``, obtained at ``now``, under ``key``: a new 0600 file renamed
        over the old one."""
        import json

        self._directory_usable(create=True)
        entry = {
            "format": FORMAT_VERSION,
            "key": key,
            "reuse_until": reuse_until(
                credentials.expiration.timestamp(), time.time() if now is None else now
            ),
            "credentials": json.loads(credentials.to_process_json()),
        }
        data = json.dumps(entry, separators=(",", ":")).encode()
        try:
            replace_file(str(self._file(key, ".json")), data, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the cache entry in {self.directory}: {exc.strerror or exc}",
                hint="check the disk and --cache-dir",
            ) from None

    def lock(self, key: str) -> EntryLock:
        """An exclusive ``flock`` for ``key`` while a ``with`` block runs: one CreateSession
        for many parallel misses."""
        self._directory_usable(create=True)
        return EntryLock(self._file(key, ".lock"), self.directory)

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


class EntryLock:
    """``with cache.lock(key):``: an exclusive ``flock`` on the entry's lock file."""

    __slots__ = ("directory", "fd", "path")

    def __init__(self, path: str, directory: str) -> None:
        self.path, self.directory, self.fd = path, directory, -1

    def __enter__(self) -> None:
        import fcntl

        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self.fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot lock the cache entry in {self.directory}: {exc.strerror or exc}",
                hint="pass --cache-dir with a directory of your own",
            ) from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)  # closing releases the lock


def read_private_file(path: str | os.PathLike[str]) -> str:
    """Read a regular file owned by this user that no one else can read or write.

    ValueError names what is wrong with a file that exists but must not be trusted.
    """
    return read_file(path, MAX_ENTRY, private=True).decode("utf-8", errors="replace")


__all__ = ["CredentialCache", "cache_key"]
