"""The on-disk credentials cache behind ``credential-process --cache``.

    >>> cache = CredentialCache.at(None)        # $XDG_CACHE_HOME/hwsigner, else ~/.cache/hwsigner
    >>> key = cache_key({"role_arn": "arn:aws:iam::111122223333:role/app"}, files=["leaf.pem"])
    >>> cache.get(key)              # the credential_process JSON, or None  # doctest: +SKIP
    >>> with cache.lock(key):                                         # doctest: +SKIP
    ...     cache.put(key, credentials)

An entry is one file named after the key, mode 0600, in a directory of mode 0700, replaced
atomically. It is used only while more than five minutes of validity remain; an entry that is
unreadable, corrupt, not owned by this user, or readable by others is ignored (and replaced by
the next ``put``), never trusted. The ``lock`` keeps parallel cache misses from all calling
CreateSession at once.

A cache hit must not load ``cryptography`` or a key backend, and is worth keeping cheap: this
module imports only the standard library (not even ``datetime``) and ``hwsigner.errors``.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import ConfigError

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
    from typing import Any

    from .credentials import Credentials

MIN_REMAINING = 5 * 60  # seconds
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # as hwsigner.credentials writes it
_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
PROCESS_FIELDS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
FORMAT_VERSION = 1
MAX_ENTRY = 64 * 1024


def default_directory(env: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/hwsigner``, else ``~/.cache/hwsigner``."""
    base = env.get("XDG_CACHE_HOME")
    if base and os.path.isabs(base):
        return Path(base) / "hwsigner"
    return Path.home() / ".cache" / "hwsigner"


def cache_key(fields: Mapping[str, object], files: Iterable[str] = ()) -> str:
    """A hex SHA-256 over every input that changes the answer.

    ``fields`` are the request's settings (ARNs, region, endpoint, duration, session name, key
    references); ``files`` are read and hashed by content, so a renewed certificate at the same
    path is a new key. A file that cannot be read still yields a key: the request that follows
    reports the problem.
    """
    digest = sha256()
    digest.update(json.dumps(dict(fields), sort_keys=True, default=str).encode())
    for path in files:
        digest.update(b"\0file\0" + path.encode())
        try:
            digest.update(sha256(Path(path).read_bytes()).digest())
        except OSError as exc:
            digest.update(f"unreadable:{exc.errno}".encode())
    return str(digest.hexdigest())


class CredentialCache:
    """A directory of cached credential sets, one file per cache key."""

    __slots__ = ("directory",)

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __repr__(self) -> str:
        return f"CredentialCache({str(self.directory)!r})"

    @classmethod
    def at(
        cls, directory: str | os.PathLike[str] | None, env: Mapping[str, str]
    ) -> CredentialCache:
        return cls(Path(directory).expanduser() if directory else default_directory(env))

    def entry_path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str, now: float | None = None) -> str | None:
        """The cached ``credential_process`` JSON for ``key``, if it is trustworthy and lasts
        more than 5 minutes past ``now`` (seconds since the epoch)."""
        if not self._directory_usable(create=False):
            return None
        try:
            data = json.loads(read_private_file(self.entry_path(key)))
            if data.get("format") != FORMAT_VERSION or data.get("key") != key:
                raise ValueError("written for another key or format")
            expiration = checked_process_json(data["credentials"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            _debug("cache: ignoring entry %s: %s", key[:12], exc)
            return None
        soon = time.time() if now is None else now
        if expiration <= time.strftime(ISO_FORMAT, time.gmtime(soon + MIN_REMAINING)):
            _debug("cache: entry %s expires too soon", key[:12])
            return None
        _debug("cache: hit %s, valid until %s", key[:12], expiration)
        return json.dumps(data["credentials"], separators=(",", ":"))

    def put(self, key: str, credentials: Credentials) -> None:
        """Store ``credentials`` under ``key``: a new 0600 file renamed over the old one."""
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
            os.replace(temp, self.entry_path(key))
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
        """Hold an exclusive lock for ``key``: one CreateSession for many parallel misses."""
        import fcntl

        self._directory_usable(create=True)
        path = self.directory / f"{key}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
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
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
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


def checked_process_json(data: Any) -> str:
    """The ``Expiration`` of a well-formed ``credential_process`` object; ValueError if not.

    Expirations in one fixed UTC format compare as strings, which spares a cache hit the
    import of ``datetime`` and ``hwsigner.credentials``.
    """
    if not isinstance(data, dict) or data.get("Version") != 1:
        raise ValueError("not credential_process JSON")
    for name in PROCESS_FIELDS:
        if not isinstance(data.get(name), str) or not data[name]:
            raise ValueError(f"{name} is missing")
    if not _ISO_TIME.fullmatch(data["Expiration"]):
        raise ValueError("Expiration is not in YYYY-MM-DDTHH:MM:SSZ form")
    return str(data["Expiration"])


def read_private_file(path: Path) -> str:
    """Read a regular file owned by this user that no one else can read or write.

    ValueError names what is wrong with a file that exists but must not be trusted.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_uid != os.geteuid():
            raise ValueError("owned by another user")
        if info.st_mode & 0o077:
            raise ValueError(f"mode {stat.S_IMODE(info.st_mode):04o} lets others in")
        data = b""
        while len(data) <= MAX_ENTRY and (chunk := os.read(fd, MAX_ENTRY + 1 - len(data))):
            data += chunk
    finally:
        os.close(fd)
    if len(data) > MAX_ENTRY:
        raise ValueError("too large")
    return data.decode("utf-8", errors="replace")


def _debug(message: str, *args: object) -> None:
    """Log only if ``logging`` is loaded (``--debug`` loads it): importing it costs a cache hit
    a noticeable share of its start-up time."""
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger("hwsigner").debug(message, *args)
