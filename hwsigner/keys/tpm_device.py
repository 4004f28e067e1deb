"""One connection to a TPM 2.0: the storage primaries it made, kept for reuse, and its cleanup.

    >>> from hwsigner.keys.tpm_device import TpmDevice
    >>> with TpmDevice.open("swtpm:host=127.0.0.1,port=2321") as tpm:   # doctest: +SKIP
    ...     parent = tpm.primary(OWNER)      # made once; later calls return the same object
    ...     key = tpm.load(parent, public, private)
    >>> tpm.counters                                                    # doctest: +SKIP
    TpmCounters(primaries_created=1, keys_loaded=1, sessions_started=0, signatures=0)

The TCTI comes from ``--tpm-tcti``, else ``TPM2TOOLS_TCTI``, else ``device:/dev/tpmrm0``.
Every transient object the device creates or loads is flushed by ``close()``, on errors too:
a TPM reached without a resource manager (swtpm over TCP, ``/dev/tpm0``) has only a few object
slots, and what one process leaves loaded there is lost to every other.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

from tpm2_pytss import ESAPI, TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_ECC, TPM2_SE, TPMA_OBJECT, TPMA_SESSION
from tpm2_pytss.types import (
    TPM2B_PRIVATE,
    TPM2B_PUBLIC,
    TPMS_ECC_PARMS,
    TPMS_RSA_PARMS,
    TPMT_ECC_SCHEME,
    TPMT_KDF_SCHEME,
    TPMT_PUBLIC,
    TPMT_RSA_SCHEME,
    TPMT_SYM_DEF_OBJECT,
    TPMU_PUBLIC_PARMS,
    TPMU_SYM_KEY_BITS,
    TPMU_SYM_MODE,
)

from ..errors import KeySourceError
from .tpm_errors import is_no_such_handle, tpm_error, unreachable

DEFAULT_TCTI = "device:/dev/tpmrm0"
OWNER, ENDORSEMENT, PLATFORM, NULL = 0x40000001, 0x4000000B, 0x4000000C, 0x40000007
HIERARCHIES = {OWNER: ESYS_TR.OWNER, ENDORSEMENT: ESYS_TR.ENDORSEMENT,
               PLATFORM: ESYS_TR.PLATFORM, NULL: ESYS_TR.NULL}  # fmt: skip
PARENT_PASSWORD_ENV = "HWSIGNER_TPM_PARENT_PASSWORD"  # noqa: S105 - a variable name
PARENT_PASSWORD_HINT = (
    f"the parent (the owner hierarchy or a persistent parent key) has a password: set "
    f"{PARENT_PASSWORD_ENV}"
)

log = logging.getLogger("hwsigner")
_shared: dict[str, TpmDevice] = {}  # the process's connections, by TCTI; see TpmDevice.shared
_shared_lock = threading.Lock()


def resolve_tcti(flag: str | None, environ: Mapping[str, str]) -> str:
    """``--tpm-tcti``, else ``TPM2TOOLS_TCTI`` (as tpm2-tools use), else the kernel's TPM RM."""
    return flag or environ.get("TPM2TOOLS_TCTI") or DEFAULT_TCTI


def is_persistent(handle: int) -> bool:
    return handle >> 24 == 0x81


def storage_template(rsa: bool = False) -> TPM2B_PUBLIC:
    """The TCG storage primary template (TCG EK Credential Profile, templates L-1 and L-2 with an
    empty unique field and noDA) that tpm2-openssl, tpm2-tss-engine and the openssl_tpm2_engine
    use for a key whose parent is a hierarchy: the same template always gives the same primary.
    """
    attributes = (
        TPMA_OBJECT.USERWITHAUTH
        | TPMA_OBJECT.RESTRICTED
        | TPMA_OBJECT.DECRYPT
        | TPMA_OBJECT.NODA
        | TPMA_OBJECT.FIXEDTPM
        | TPMA_OBJECT.FIXEDPARENT
        | TPMA_OBJECT.SENSITIVEDATAORIGIN
    )
    aes128cfb = TPMT_SYM_DEF_OBJECT(
        algorithm=TPM2_ALG.AES,
        keyBits=TPMU_SYM_KEY_BITS(aes=128),
        mode=TPMU_SYM_MODE(aes=TPM2_ALG.CFB),
    )
    if rsa:
        kind, parameters = (
            TPM2_ALG.RSA,
            TPMU_PUBLIC_PARMS(
                rsaDetail=TPMS_RSA_PARMS(
                    symmetric=aes128cfb,
                    scheme=TPMT_RSA_SCHEME(scheme=TPM2_ALG.NULL),
                    keyBits=2048,
                    exponent=0,
                )
            ),
        )
    else:
        kind, parameters = (
            TPM2_ALG.ECC,
            TPMU_PUBLIC_PARMS(
                eccDetail=TPMS_ECC_PARMS(
                    symmetric=aes128cfb,
                    scheme=TPMT_ECC_SCHEME(scheme=TPM2_ALG.NULL),
                    curveID=TPM2_ECC.NIST_P256,
                    kdf=TPMT_KDF_SCHEME(scheme=TPM2_ALG.NULL),
                )
            ),
        )
    area = TPMT_PUBLIC(
        type=kind,
        nameAlg=TPM2_ALG.SHA256,
        objectAttributes=attributes,
        authPolicy=b"",
        parameters=parameters,
    )
    return TPM2B_PUBLIC(publicArea=area)


@dataclass(slots=True)
class TpmCounters:
    """What a device did, for tests and benchmarks: a primary is made once, not per signature."""

    primaries_created: int = 0
    keys_loaded: int = 0
    sessions_started: int = 0
    signatures: int = 0


class TpmDevice:
    """An open ESAPI context. ``lock`` serializes commands: ESAPI is not thread-safe."""

    def __init__(self, esapi: ESAPI, tcti: str) -> None:
        self.esapi = esapi
        self.tcti = tcti
        self.counters = TpmCounters()
        self.lock = threading.RLock()
        self._primaries: dict[tuple[int, bool], ESYS_TR] = {}
        self._transient: list[ESYS_TR] = []
        self._persistent: list[ESYS_TR] = []
        self._sessions: list[ESYS_TR] = []
        self._users = 0

    @classmethod
    def open(cls, tcti: str | None = None) -> TpmDevice:
        """Connect through ``tcti`` (default: see ``resolve_tcti``)."""
        tcti = tcti or resolve_tcti(None, os.environ)
        quiet_tss_logging()
        try:
            esapi = ESAPI(tcti)
        except TSS2_Exception as exc:
            raise unreachable(tcti, exc) from exc
        except RuntimeError as exc:  # a TCTI string that is not name:conf
            raise unreachable(tcti, exc) from exc
        log.debug("TPM: connected through %s", tcti)
        return cls(esapi, tcti)

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

    def primary(self, hierarchy: int = OWNER, *, rsa: bool = False) -> ESYS_TR:
        """The standard storage primary under ``hierarchy``: created on first use, then reused."""
        if (hierarchy, rsa) in self._primaries:
            return self._primaries[(hierarchy, rsa)]
        if hierarchy not in HIERARCHIES:
            raise ValueError(f"0x{hierarchy:08x} is not a hierarchy")
        name = {OWNER: "owner", ENDORSEMENT: "endorsement", PLATFORM: "platform", NULL: "null"}
        doing = f"creating the storage primary key in the {name[hierarchy]} hierarchy"
        with self.command(doing, PARENT_PASSWORD_HINT):
            parent_password = os.environ.get(PARENT_PASSWORD_ENV)
            if parent_password:
                self.esapi.tr_set_auth(HIERARCHIES[hierarchy], parent_password.encode())
            template = storage_template(rsa)
            handle = self.esapi.create_primary(None, template, HIERARCHIES[hierarchy])[0]
        self._primaries[(hierarchy, rsa)] = handle
        self.counters.primaries_created += 1
        log.debug("TPM: created the %s storage primary", "RSA" if rsa else "ECC P-256")
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

    def parent(self, handle: int, *, rsa: bool = False) -> ESYS_TR:
        """A key file's parent: a hierarchy means its storage primary; else a persistent key."""
        if handle in HIERARCHIES:
            return self.primary(handle, rsa=rsa)
        obj = self.persistent(handle, f"opening the parent key 0x{handle:08x}")
        parent_password = os.environ.get(PARENT_PASSWORD_ENV)
        if parent_password:
            with self.command(f"opening the parent key 0x{handle:08x}"):
                self.esapi.tr_set_auth(obj, parent_password.encode())
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
            self._transient.clear()
            self._sessions.clear()
            self._primaries.clear()
            self._persistent.clear()
            self.esapi.close()

    def __enter__(self) -> TpmDevice:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def quiet_tss_logging() -> None:
    """The TSS libraries log errors to stderr themselves; hwsigner reports each error once.

    ``TSS2_LOG`` is read by the C libraries when they first log, so this works after import.
    A ``TSS2_LOG`` the user set is kept (it is how one debugs the TSS), and so is ``--debug``.
    """
    if "TSS2_LOG" not in os.environ and not log.isEnabledFor(logging.DEBUG):
        os.environ["TSS2_LOG"] = "all+NONE"
