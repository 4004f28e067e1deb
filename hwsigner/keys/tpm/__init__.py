"""TPM 2.0 keys: ``TSS2 PRIVATE KEY`` files and persistent handles, signing inside the TPM.

    >>> from hwsigner.keys import KeyOptions
    >>> from hwsigner.keys.tpm import TpmKey
    >>> options = KeyOptions(tpm_tcti="swtpm:host=127.0.0.1,port=2321")
    >>> with TpmKey.open("device.tss2", options) as key:               # doctest: +SKIP
    ...     signatures = [key.sign(b"message") for _ in range(100)]
    ...     key.counters.primaries_created, key.counters.signatures
    (1, 100)
    >>> options = KeyOptions(no_tpm_key_password=True)
    >>> key = TpmKey.open("handle:0x81000010", options)               # doctest: +SKIP

A key file is loaded once, under its parent (a hierarchy means the standard storage primary,
created once per device), and stays loaded until ``close()``, which flushes everything. The
message is hashed here; the TPM signs the digest. ECDSA always declares the curve's hash to the
TPM and pads (or truncates) the digest to that size, as AWS's helper does, so a SHA-256 digest
can be signed with a P-384 key; the result is ordinary ECDSA over the chosen hash.

When the connection to the TPM breaks (swtpm or the TPM restarted, a resource manager went
away), a signature reconnects once, loads the primary and the key again with the password it
already has, and retries; if the TPM is still unreachable it raises one ``KeySourceError`` and the
next signature tries again. A wrong password is never retried.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.types import TPMT_PUBLIC

from ...errors import KeySourceError, PasswordError
from ..backend import Digest, KeyBackend, KeyOptions, PublicKey, ask_secret
from .device import TpmCounters, TpmDevice, parse_handle, resolve_tcti
from .errors import TpmConnectionLost
from .keyfile import KeyFileError, TpmKeyFile
from .keygen import NewTpmKey, generate_key, key_template, parent, storage_template
from .signing import (
    KeyRef,
    SigningPlan,
    check_signing_key,
    public_key_of,
    signing_plan,
    wire_signature,
)

PASSWORD_ENV = "HWSIGNER_TPM_KEY_PASSWORD"  # noqa: S105 - a variable name

log = logging.getLogger("hwsigner")


def open_key(ref: str, options: KeyOptions) -> TpmKey:
    """The entry point ``hwsigner.keys.open_key`` uses for ``handle:`` refs and TSS2 files."""
    return TpmKey.open(ref, options)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A key as loaded on one connection (``generation``) of its device."""

    obj: ESYS_TR
    area: TPMT_PUBLIC
    generation: int
    session: ESYS_TR | None = None  # the HMAC session that carries the password, if there is one


class TpmKey(KeyBackend):
    """A key loaded in (or persistent in) a TPM. ``open`` does the I/O; ``close`` cleans up."""

    def __init__(
        self, device: TpmDevice, ref: KeyRef, loaded: Loaded, password: str, *,
        owns_device: bool = True, auth_source: str = "none",
    ) -> None:  # fmt: skip
        self.device = device
        self.description = ref.description
        self.auth_source = auth_source
        self._ref = ref
        self._loaded = loaded
        self._password = password  # kept to load the key again after a reconnection
        self._public_key = public_key_of(loaded.area)
        self._owns_device = owns_device
        self._refused: PasswordError | None = None
        self._plans: dict[str, SigningPlan] = {}  # by digest
        self._lost_on: int | None = None  # the generation whose connection broke under us
        self._closed = False

    @classmethod
    def open(
        cls, ref: str, options: KeyOptions | None = None, device: TpmDevice | None = None
    ) -> TpmKey:
        """Open ``handle:0x81...`` or a TSS2 key file, on ``device`` or the process's shared one."""
        options = options or KeyOptions()
        key_ref = KeyRef.parse(ref)
        owns_device = device is None
        device = device or TpmDevice.shared(resolve_tcti(options.tpm_tcti, os.environ))
        try:
            # asked before anything is loaded: a TPM without a resource manager has few slots
            password, source = key_password(options, key_ref.keyfile, key_ref.description)
            seen = device.generation
            try:
                loaded = load(device, key_ref, password)
            except TpmConnectionLost:  # a shared connection that broke under other keys
                device.reopen(seen)
                loaded = load(device, key_ref, password)
        except BaseException:
            if owns_device:
                device.release()
            raise
        return cls(device, key_ref, loaded, password, owns_device=owns_device, auth_source=source)

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    @property
    def counters(self) -> TpmCounters:
        return self.device.counters

    def sign(self, message: bytes, digest: Digest = "SHA256") -> bytes:
        if self._refused is not None:  # a wrong password is never tried again
            raise self._refused
        plan = self._plans.get(digest)
        if plan is None:
            plan = self._plans[digest] = signing_plan(self._loaded.area, digest, self.description)
        tpm_digest = plan.tpm_digest(hashlib.new(digest.lower(), message).digest())
        try:
            return self._sign(tpm_digest, plan)
        except TpmConnectionLost as exc:
            log.debug("TPM: %s; reconnecting once", exc.message)
        return self._sign(tpm_digest, plan)

    def _sign(self, tpm_digest: bytes, plan: SigningPlan) -> bytes:
        device = self.device
        with device.lock:
            try:
                if self._lost_on is not None or self._loaded.generation != device.generation:
                    self._reload()
                with device.command(f"signing with {self.description}"):
                    signature = device.esapi.sign(
                        self._loaded.obj,
                        tpm_digest,
                        plan.scheme,
                        session1=self._loaded.session or ESYS_TR.PASSWORD,
                    )
            except TpmConnectionLost:
                self._lost_on = device.generation
                raise
            except PasswordError as exc:
                raise self._refuse(exc) from None
            device.counters.signatures += 1
        return wire_signature(signature, self._public_key)

    def _reload(self) -> None:
        """Load the key on a new connection (made here unless another key made it already)."""
        seen = self._loaded.generation if self._lost_on is None else self._lost_on
        self.device.reopen(seen)
        loaded = load(self.device, self._ref, self._password)
        if loaded.area.marshal() != self._loaded.area.marshal():
            unload(self.device, loaded)
            raise KeySourceError(
                f"{self.description} is not the same key since the TPM connection was reopened",
                hint=f"check which TPM {self.device.tcti} reaches now",
            )
        self._loaded, self._lost_on = loaded, None

    def _refuse(self, exc: PasswordError) -> PasswordError:
        hint = exc.hint
        if "emptyAuth" in self.auth_source:
            hint = (
                "the key file says the key has no password, yet it has one (tpm2-tools 5.7 "
                "and older write that flag inverted): pass --tpm-key-password"
            )
        self._refused = PasswordError(
            f"wrong password for {self.description} (password {self.auth_source})", hint=hint
        )
        return self._refused

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._loaded.generation == self.device.generation:  # else the TPM forgot them
            unload(self.device, self._loaded)
        if self._owns_device:
            self.device.release()


def load(device: TpmDevice, ref: KeyRef, password: str) -> Loaded:
    """Load the key (and its parent, and a session for its password) on ``device``."""
    obj = salt_key = session = None
    description = ref.description
    try:
        if ref.keyfile is None or ref.blobs is None:
            obj = device.persistent(ref.handle, f"opening the persistent key 0x{ref.handle:08x}")
        else:
            salt_key = parent(device, ref.keyfile.parent, rsa=ref.keyfile.rsa_parent)
            obj = device.load(salt_key, *ref.blobs, f"loading the {description} into the TPM")
        with device.command(f"reading the public key of {description}"):
            area = device.esapi.read_public(obj)[0].publicArea
        check_signing_key(area, description)
        with device.command(f"setting the password of {description}"):
            device.esapi.tr_set_auth(obj, password.encode())
        if password:
            session = device.auth_session(salt_key=salt_key)
        return Loaded(obj, area, device.generation, session)
    except BaseException:
        for handle in (session, obj):
            if handle is not None:
                device.flush(handle)
        raise


def unload(device: TpmDevice, loaded: Loaded) -> None:
    if loaded.session is not None:
        device.flush(loaded.session)
    device.flush(loaded.obj)


def key_password(
    options: KeyOptions, keyfile: TpmKeyFile | None, description: str
) -> tuple[str, str]:
    """The key's password and where it came from (for error messages; never the value).

    A password given on the command line wins even over a file that says the key has none:
    tpm2_encodeobject of tpm2-tools 5.7 and older writes that flag inverted.
    """
    if options.tpm_key_password is not None:
        return options.tpm_key_password, "from --tpm-key-password"
    if options.no_tpm_key_password:
        return "", "none, as --no-tpm-key-password says"
    if keyfile is not None and keyfile.empty_auth:
        return "", "none, as the key file says (emptyAuth)"
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV], f"from {PASSWORD_ENV}"
    typed = ask_secret(
        f"Password for {description}: ",
        instead=f"--tpm-key-password, {PASSWORD_ENV} or --no-tpm-key-password",
    )
    return typed, "as typed"


__all__ = [
    "PASSWORD_ENV",
    "KeyFileError",
    "NewTpmKey",
    "TpmConnectionLost",
    "TpmCounters",
    "TpmDevice",
    "TpmKey",
    "TpmKeyFile",
    "generate_key",
    "key_template",
    "open_key",
    "parse_handle",
    "storage_template",
]
