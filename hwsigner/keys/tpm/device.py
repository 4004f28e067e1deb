"""One connection to a TPM 2.0: the storage primaries it made, kept for reuse, and its cleanup.

    >>> from hwsigner.keys.tpm import TpmDevice, storage_template
    >>> with TpmDevice.open("swtpm:host=127.0.0.1,port=2321") as tpm:   # doctest: +SKIP
    ...     parent = tpm.primary(OWNER, storage_template())  # made once, then reused
    ...     key = tpm.load(parent, public, private, "loading my key")
    >>> tpm.counters                                                    # doctest: +SKIP
    TpmCounters(primaries_created=1, keys_loaded=1, sessions_started=0, signatures=0, reconnects=0)

The TCTI comes from ``--tpm-tcti``, else ``TPM2TOOLS_TCTI``, else ``device:/dev/tpmrm0``.
Every transient object the device creates or loads is flushed by ``close()``, on errors too:
a TPM reached without a resource manager (swtpm over TCP, ``/dev/tpm0``) has only a few object
slots, and what one process leaves loaded there is lost to every other. A connection that
breaks (the TPM or swtpm restarted) is replaced by ``reopen()``; ``generation`` then tells the
keys that the objects they loaded are gone.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import TracebackType

from tpm2_pytss import ESAPI, TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_SE, TPMA_SESSION
from tpm2_pytss.types import TPM2B_PRIVATE, TPM2B_PUBLIC

from ...errors import ConfigError, KeySourceError
from .errors import is_no_such_handle, quiet_tss_logging, tpm_error, unreachable

DEFAULT_TCTI = "device:/dev/tpmrm0"
OWNER, ENDORSEMENT, PLATFORM, NULL = 0x40000001, 0x4000000B, 0x4000000C, 0x40000007
HIERARCHIES = {OWNER: ESYS_TR.OWNER, ENDORSEMENT: ESYS_TR.ENDORSEMENT,
               PLATFORM: ESYS_TR.PLATFORM, NULL: ESYS_TR.NULL}  # fmt: skip
PARENT_PASSWORD_ENV = "HWSIGNER_TPM_PARENT_PASSWORD"  # noqa: S105 - a variable name
PARENT_PASSWORD_HINT = (
    f"the parent (the owner hierarchy or a persistent parent key) has a password: set "
    f"{PARENT_PASSWORD_ENV}"
)

HANDLE_RE = re.compile(r"handle:(?:0[xX])?([0-9a-fA-F]{1,8})")

log = logging.getLogger("hwsigner")
_shared: dict[str, TpmDevice] = {}  # the process's connections, by TCTI; see TpmDevice.shared
_shared_lock = threading.Lock()


def resolve_tcti(flag: str | None, environ: Mapping[str, str]) -> str:
    """``--tpm-tcti``, else ``TPM2TOOLS_TCTI`` (as tpm2-tools use), else the kernel's TPM RM."""
    return flag or environ.get("TPM2TOOLS_TCTI") or DEFAULT_TCTI


def is_persistent(handle: int) -> bool:
    return handle >> 24 == 0x81


def parse_handle(ref: str) -> int:
    """``handle:0x81000010`` (the ``0x`` is optional) as a persistent handle number."""
    match = HANDLE_RE.fullmatch(ref.strip())
    if match is None or not is_persistent(int(match.group(1), 16)):
        raise ConfigError(
            f"{ref!r} is not a persistent TPM handle",
            hint="write it as handle:0x81000010 (persistent handles are 0x81000000-0x81ffffff)",
        )
    return int(match.group(1), 16)


@dataclass(slots=True)
class TpmCounters:
    """What a device did, for tests and benchmarks: a primary is made once, not per signature."""

    primaries_created: int = 0
    keys_loaded: int = 0
    sessions_started: int = 0
    signatures: int = 0
    reconnects: int = 0


class TpmDevice:
    """An open ESAPI context. ``lock`` serializes commands: ESAPI is not thread-safe."""

    def __init__(self, esapi: ESAPI, tcti: str) -> None:
        self.esapi = esapi
        self.tcti = tcti
        self.counters = TpmCounters()
        self.lock = threading.RLock()
        self.generation = 0  # how many times the connection was replaced; see reopen()
        self._primaries: dict[tuple[int, bytes], ESYS_TR] = {}
        self._transient: list[ESYS_TR] = []
        self._persistent: list[ESYS_TR] = []
        self._sessions: list[ESYS_TR] = []
        self._users = 0

    @classmethod
    def open(cls, tcti: str | None = None) -> TpmDevice:
        """Connect through ``tcti`` (default: see ``resolve_tcti``)."""
        tcti = tcti or resolve_tcti(None, os.environ)
        return cls(connect(tcti), tcti)

    @classmethod
    def shared(cls, tcti: str | None = None) -> TpmDevice:
        """The process's connection to ``tcti``, opened on first use; ``release()`` it when done.

        Keys opened in one process share it, and so share its storage primary: the primary is
        created once per process, and two keys take three object slots, not four.
        """
        tcti = tcti or resolve_tcti(None, os.environ)
        with _shared_lock:
            device = _shared.get(tcti)
            if device is None or device.esapi.is_closed():
                device = _shared[tcti] = cls.open(tcti)
            device._users += 1
            return device

    def release(self) -> None:
        """Done with a ``shared()`` device: the last user's release flushes and disconnects."""
        with _shared_lock:
            self._users -= 1
            if self._users > 0:
                return
            if _shared.get(self.tcti) is self:
                del _shared[self.tcti]
        self.close()

    @contextmanager
    def command(self, doing: str, password_hint: str | None = None) -> Iterator[None]:
        """Run TPM commands under the lock; a TSS error becomes a ``HwSignerError``.

        ``password_hint`` replaces the hint of a refused password (by default, the key's).
        """
        with self.lock:
            try:
                yield
            except TSS2_Exception as exc:
                raise tpm_error(exc, doing, self.tcti, password_hint) from exc

    def reopen(self, seen: int) -> None:
        """Replace a broken connection, unless it was replaced since generation ``seen``.

        Everything the old one loaded is forgotten, not flushed: the TPM may have restarted, and
        its handles may now belong to another program. Raises if the TPM is still unreachable.
        """
        with self.lock:
            if self.generation != seen and not self.esapi.is_closed():
                return
            self._forget()
            with suppress(TSS2_Exception):
                self.esapi.close()
            try:
                self.esapi = connect(self.tcti)
            except KeySourceError as exc:
                raise KeySourceError(
                    f"lost the connection to the TPM ({self.tcti}) and cannot reconnect "
                    f"({exc.__cause__ or exc.message})",
                    hint="check that the TPM (or swtpm) is running; the next attempt reconnects",
                ) from None
            self.generation += 1
            self.counters.reconnects += 1

    def primary(self, hierarchy: int, template: TPM2B_PUBLIC) -> ESYS_TR:
        """The primary key ``template`` makes under ``hierarchy``: created on first use, then
        reused (the same template always makes the same key)."""
        cache_key = (hierarchy, bytes(template.marshal()))
        if cache_key in self._primaries:
            return self._primaries[cache_key]
        if hierarchy not in HIERARCHIES:
            raise ValueError(f"0x{hierarchy:08x} is not a hierarchy")
        name = {OWNER: "owner", ENDORSEMENT: "endorsement", PLATFORM: "platform", NULL: "null"}
        doing = f"creating the storage primary key in the {name[hierarchy]} hierarchy"
        with self.command(doing, PARENT_PASSWORD_HINT):
            parent_password = os.environ.get(PARENT_PASSWORD_ENV)
            if parent_password:
                self.esapi.tr_set_auth(HIERARCHIES[hierarchy], parent_password.encode())
            handle = self.esapi.create_primary(None, template, HIERARCHIES[hierarchy])[0]
        self._primaries[cache_key] = handle
        self.counters.primaries_created += 1
        log.debug("TPM: created a primary key in the %s hierarchy", name[hierarchy])
        return handle

    def persistent(self, handle: int, doing: str) -> ESYS_TR:
        """An ESAPI reference to the persistent object at ``handle``; the TPM checks it exists."""
        with self.lock:
            try:
                obj = self.esapi.tr_from_tpmpublic(handle)
            except TSS2_Exception as exc:
                if is_no_such_handle(exc):
                    raise KeySourceError(
                        f"the TPM ({self.tcti}) has nothing at handle 0x{handle:08x}",
                        hint="list its persistent keys with tpm2_getcap handles-persistent",
                    ) from exc
                raise tpm_error(exc, doing, self.tcti) from exc
        self._persistent.append(obj)
        return obj

    def load(
        self, parent: ESYS_TR, public: TPM2B_PUBLIC, private: TPM2B_PRIVATE, doing: str
    ) -> ESYS_TR:
        """Load a wrapped key under ``parent``; it stays loaded until ``flush`` or ``close``."""
        with self.command(doing, PARENT_PASSWORD_HINT):
            obj = self.esapi.load(parent, private, public)
        self._transient.append(obj)
        self.counters.keys_loaded += 1
        return obj

    def auth_session(self, salt_key: ESYS_TR | None = None) -> ESYS_TR:
        """An HMAC session to carry a password, so that it never crosses the bus in clear.

        Salted by ``salt_key`` (a storage key) when given: the session key then comes from a
        secret only the TPM can decrypt, so an eavesdropper cannot test guesses offline either.
        """
        with self.command("starting an authorization session"):
            session = self.esapi.start_auth_session(
                salt_key if salt_key is not None else ESYS_TR.NONE,
                ESYS_TR.NONE,
                TPM2_SE.HMAC,
                None,
                TPM2_ALG.SHA256,
            )
            self._sessions.append(session)
            self.esapi.trsess_set_attributes(session, TPMA_SESSION.CONTINUESESSION)
        self.counters.sessions_started += 1
        return session

    def flush(self, obj: ESYS_TR) -> None:
        """Unload a transient object or session, or forget a persistent object (it stays)."""
        with self.lock:
            try:
                if obj in self._transient:
                    self._transient.remove(obj)
                    self.esapi.flush_context(obj)
                elif obj in self._sessions:
                    self._sessions.remove(obj)
                    self.esapi.flush_context(obj)
                elif obj in self._persistent:
                    self._persistent.remove(obj)
                    self.esapi.tr_close(obj)
            except TSS2_Exception as exc:
                log.debug("TPM: could not flush an object: %s", exc)

    def close(self) -> None:
        """Flush every transient object loaded through this device, then disconnect."""
        with self.lock:
            if self.esapi.is_closed():
                return
            for obj in [*self._sessions, *reversed(self._transient), *self._primaries.values()]:
                try:
                    self.esapi.flush_context(obj)
                except TSS2_Exception as exc:  # the connection may be gone; keep going
                    log.debug("TPM: could not flush an object: %s", exc)
            self._forget()
            self.esapi.close()

    def _forget(self) -> None:
        self._transient.clear()
        self._sessions.clear()
        self._primaries.clear()
        self._persistent.clear()

    def __enter__(self) -> TpmDevice:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect(tcti: str) -> ESAPI:
    """An ESAPI context on ``tcti``, or a ``KeySourceError`` saying why the TPM is unreachable."""
    quiet_tss_logging()
    try:
        esapi = ESAPI(tcti)
    except (TSS2_Exception, RuntimeError) as exc:  # RuntimeError: a TCTI that is not name:conf
        raise unreachable(tcti, exc) from exc
    log.debug("TPM: connected through %s", tcti)
    return esapi


__all__ = [
    "HIERARCHIES", "OWNER", "PARENT_PASSWORD_ENV", "TpmCounters", "TpmDevice", "connect",
    "is_persistent", "parse_handle", "resolve_tcti",
]  # fmt: skip
