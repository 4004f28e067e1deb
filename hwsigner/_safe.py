"""Reading what others wrote, safely (user files, JSON from outside, remote text); writing whole.

    >>> read_user_file("PKCS11:token=dev?pin-value=1234", "certificate", "--certificate")
    Traceback (most recent call last):
    hwsigner.errors.ConfigError: certificate PKCS11:token=dev?… is neither a file nor a pkcs11: URI
    >>> load_json(b'{"a": [1, 2]}')
    {'a': [1, 2]}
    >>> one_line("AccessDenied\\n\\x1b[31mred")
    'AccessDenied \\\\x1b[31mred'

- ``read_file`` / ``read_user_file``: a named path must be a regular file (opened without
  blocking, checked with ``fstat``, read up to a size cap); only ``/dev/fd/N`` and
  ``/proc/self/fd/N`` may be pipes, read with the same cap and a deadline. A FIFO cannot hang
  and ``/dev/zero`` cannot eat memory.
- ``read_reference``: the same for what a user may name instead of a file: ``env:NAME`` (the
  text of an environment variable) and ``fd:N`` (an inherited descriptor, N >= 3: never stdin,
  which belongs to the caller of ``credential_process``). A descriptor can be read once, so what
  it held is kept for the life of the process (a cache hit and the full path both need it).
- ``load_json``: bounded size and nesting depth, checked before ``json`` parses (so no
  ``RecursionError``); every failure is a ``ValueError``.
- ``one_line``: remote text (a service's error message, a status line) as one printable line.
- ``replace_file``: readers see the old file or the new one (``.NAME.XXXXXXXX.tmp``, renamed).

A cached ``credential-process`` reads its entry through ``read_file``, so this module imports
only what a bare ``python`` has loaded already; ``json``, ``re`` and ``select`` are imported
by the functions that need them.
"""

from __future__ import annotations

import os
import stat
import time

from .errors import ConfigError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any, NoReturn

MAX_USER_FILE = 1 << 20  # certificates, chains, keys, PKCS#12, TSS2 PEM, PIN and token files
PIPE_DEADLINE = 10.0  # seconds to read a /dev/fd/N pipe to its end
MAX_JSON = 1 << 20
MAX_JSON_DEPTH = 32
MAX_LINE = 300
PIPE_PREFIXES = ("/dev/fd/", "/proc/self/fd/")
PIN_ATTRIBUTES = ("pin-value=", "pin-source=")
REFERENCE_SCHEMES = ("env:", "fd:")
_READ_ONCE: dict[str, bytes] = {}  # descriptors already read: fd:N and /dev/fd/N


def read_file(
    path: str | os.PathLike[str],
    limit: int = MAX_USER_FILE,
    *,
    private: bool = False,
    deadline: float = PIPE_DEADLINE,
) -> bytes:
    """At most ``limit`` bytes of a regular file (or an inherited ``/dev/fd/N`` pipe).

    ``private``: the file must also be owned by this user and closed to others. Raises
    ``OSError`` when it cannot be opened, ``ValueError`` for a file it must not read (not a
    regular file, too large, not private, a pipe that does not close in time).
    """
    name = os.fspath(path)
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (os.O_NOFOLLOW if private else 0)
    fd = os.open(name, flags)
    try:
        info = os.fstat(fd)
        if not private and stat.S_ISFIFO(info.st_mode) and is_fd_path(name):
            return _read_pipe(fd, limit, deadline)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if private and info.st_uid != os.geteuid():
            raise ValueError("owned by another user")
        if private and info.st_mode & 0o077:
            raise ValueError(f"mode {stat.S_IMODE(info.st_mode):04o} lets others in")
        if info.st_size > limit:
            raise ValueError(f"larger than {limit} bytes")
        data = b""
        while len(data) <= limit and (chunk := os.read(fd, limit + 1 - len(data))):
            data += chunk
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return data


def is_fd_path(name: str) -> bool:
    """``/dev/fd/N`` or ``/proc/self/fd/N``: an inherited descriptor, which may be a pipe."""
    for prefix in PIPE_PREFIXES:
        if name.startswith(prefix) and name[len(prefix) :].isdecimal() and name.isascii():
            return True
    return False


def _read_pipe(fd: int, limit: int, deadline: float) -> bytes:
    import select

    end = time.monotonic() + deadline
    data = b""
    while len(data) <= limit:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise ValueError(f"the pipe did not close within {deadline:g} s")
        try:
            chunk = os.read(fd, limit + 1 - len(data))
        except BlockingIOError:
            continue
        if not chunk:
            return data
        data += chunk
    raise ValueError(f"larger than {limit} bytes")


def is_reference(name: str) -> bool:
    """``env:NAME`` or ``fd:N``: bytes that come from no file."""
    return name.startswith(REFERENCE_SCHEMES)


def read_reference(name: str, limit: int = MAX_USER_FILE) -> bytes:
    """``read_file``, or the bytes of ``env:NAME`` / ``fd:N``; each descriptor is read once.

    Raises ``OSError`` and ``ValueError`` as ``read_file`` does.
    """
    if name.startswith("env:"):
        value = os.environ.get(name[4:])
        if not value:
            raise ValueError(f"environment variable {name[4:]} is not set or empty")
        if len(value) > limit:
            raise ValueError(f"larger than {limit} bytes")
        return value.encode()
    once = name.startswith("fd:") or is_fd_path(name)
    if once and name in _READ_ONCE:
        return _READ_ONCE[name]
    data = _read_descriptor(name[3:], limit) if name.startswith("fd:") else read_file(name, limit)
    if once:
        _READ_ONCE[name] = data
    return data


def _read_descriptor(number: str, limit: int) -> bytes:
    if not (number.isdecimal() and number.isascii()) or int(number) < 3:
        raise ValueError("fd:N takes a descriptor number of 3 or more (never stdin)")
    fd = int(number)
    info = os.fstat(fd)  # OSError (EBADF) when the descriptor is not open
    if stat.S_ISREG(info.st_mode):
        if info.st_size > limit:
            raise ValueError(f"larger than {limit} bytes")
        return os.pread(fd, limit + 1, 0)[: limit + 1]
    if not stat.S_ISFIFO(info.st_mode) and not stat.S_ISSOCK(info.st_mode):
        raise ValueError("not a pipe or a regular file")
    return _read_pipe(fd, limit, PIPE_DEADLINE)


def read_user_file(path: str, what: str, flag: str, limit: int = MAX_USER_FILE) -> bytes:
    """``read_reference`` for a file (or ``env:``/``fd:``) a user named, with one-line errors
    that never show a PIN."""
    shown = shown_path(path)
    try:
        data = read_reference(path, limit)
        if len(data) > limit:  # a descriptor read once with a larger limit
            raise ValueError(f"larger than {limit} bytes")
        return data
    except (OSError, ValueError) as exc:
        if is_reference(path):
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ConfigError(
                f"cannot read {what} from {shown}: {reason}",
                hint=f"give {flag} env:NAME (PEM in that variable) or fd:N (an open descriptor)",
            ) from None
        _file_error(exc, path, what, flag)


def _file_error(exc: Exception, path: str, what: str, flag: str) -> NoReturn:
    shown = shown_path(path)
    if isinstance(exc, FileNotFoundError):
        if looks_like_pkcs11_uri(path):
            raise ConfigError(
                f"{what} {shown} is neither a file nor a pkcs11: URI",
                hint="a PKCS#11 URI begins with exactly 'pkcs11:' (lower case, a colon, "
                "no space before it)",
            ) from None
        hint = f"check the {flag} path"
        raise ConfigError(f"{what} file not found: {shown}", hint=hint) from None
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"cannot read {what} file {shown}: {reason}", hint=f"check the {flag} path"
        ) from None
    raise ConfigError(
        f"cannot read {what} file {shown}: {exc}",
        hint=f"give {flag} a regular file (or /dev/fd/N for a pipe)",
    ) from None


def looks_like_pkcs11_uri(text: str) -> bool:
    """A near miss of ``pkcs11:`` (``PKCS11:``, ``pkcs11;``, `` pkcs11:``, ``pkcs:``), or any
    text carrying PKCS#11 URI attributes, which a user meant as a URI, not as a file name."""
    head = text.lstrip().lower()[:8]
    if head.startswith("pkcs") and not text.startswith("pkcs11:"):
        return True
    return any(a in text for a in (*PIN_ATTRIBUTES, "token=", "object=", "module-path="))


def shown_path(path: str) -> str:
    """``path`` fit for a message: one line, and nothing after a ``pin-value``/``pin-source``
    attribute (a mistyped URI may carry a PIN)."""
    lowered = path.lower()
    cut = min((i for i in map(lowered.find, PIN_ATTRIBUTES) if i >= 0), default=-1)
    if cut >= 0:
        path = path[:cut] + "…"
    return one_line(path)


def load_json(data: bytes | str, limit: int = MAX_JSON, depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON of at most ``limit`` bytes nested at most ``depth`` deep; ValueError else."""
    if len(data) > limit:
        raise ValueError(f"JSON text larger than {limit} bytes")
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if json_depth(text, depth) > depth:
        raise ValueError(f"JSON nested deeper than {depth}")
    import json

    try:
        return json.loads(text)
    except RecursionError:  # pragma: no cover - json_depth bounds the nesting first
        raise ValueError("JSON nested too deep") from None


def json_depth(text: str, stop: int = MAX_JSON_DEPTH) -> int:
    """The deepest nesting of arrays and objects in ``text`` (strings skipped), counted up to
    one past ``stop``."""
    import re

    deepest = level = 0
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"?|[\[{]|[\]}]', text):
        token = match.group()
        if token in ("[", "{"):
            level += 1
            deepest = max(deepest, level)
            if deepest > stop:
                break
        elif token in ("]", "}"):
            level -= 1
    return deepest


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """Remote text as one printable line: line breaks and tabs become spaces, other control
    and format characters (terminal escapes) are written as ``\\xNN``, and the result is cut
    at ``limit`` characters."""
    out = []
    size = 0
    for char in text[: limit * 2]:
        if char in "\r\n\t\v\f\x85\u2028\u2029":
            piece = " "
        elif char.isprintable():
            piece = char
        else:
            piece = ascii(char)[1:-1]
        out.append(piece)
        size += len(piece)
        if size > limit:
            break
    line = "".join(out)
    if len(line) > limit or len(text) > limit * 2:
        line = line[: limit - 1] + "…"
    return line


def replace_file(target: str, data: bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
    """Write ``data`` to ``target`` atomically and durably; an OSError leaves it as it was."""
    import tempfile

    directory, name = os.path.split(target)
    fd, temporary = tempfile.mkstemp(dir=directory or ".", prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            if owner is not None and os.geteuid() == 0:
                os.fchown(f.fileno(), *owner)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    dir_fd = os.open(directory or ".", os.O_RDONLY)
    try:  # the rename is durable once the directory is; some file systems cannot fsync one
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
