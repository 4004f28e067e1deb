"""TPM 2.0 keys: ``TSS2 PRIVATE KEY`` files and persistent handles, signing inside the TPM.

    >>> from hwsigner.keys import KeyOptions
    >>> from hwsigner.keys.tpm import TpmKey
    >>> options = KeyOptions(tpm_tcti="swtpm:host=127.0.0.1,port=2321")
    >>> with TpmKey.open("device.tss2", options) as key:               # doctest: +SKIP
    ...     signatures = [key.sign(b"message") for _ in range(100)]
    ...     key.counters
    TpmCounters(primaries_created=1, keys_loaded=1, sessions_started=0, signatures=100)
    >>> options = KeyOptions(no_tpm_key_password=True)
    >>> key = TpmKey.open("handle:0x81000010", options)               # doctest: +SKIP

A key file is loaded once, under its parent (a hierarchy means the standard storage primary,
created once per device), and stays loaded until ``close()``, which flushes everything. The
message is hashed here; the TPM signs the digest. ECDSA always declares the curve's hash to the
TPM and pads (or truncates) the digest to that size, as AWS's helper does, so a SHA-256 digest
can be signed with a P-384 key; the result is ordinary ECDSA over the chosen hash.
"""

from __future__ import annotations

import hashlib
import os
import re

from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.types import TPM2B_PRIVATE, TPM2B_PUBLIC, TPMT_PUBLIC

from .._tty import ask_secret
from ..errors import ConfigError, KeySourceError, PasswordError
from . import Digest, KeyBackend, KeyOptions, PublicKey
from .tpm_device import TpmCounters, TpmDevice, is_persistent, resolve_tcti
from .tpm_keyfile import KeyFileError, TpmKeyFile
from .tpm_signing import (
    SigningPlan,
    check_signing_key,
    public_key_of,
    signing_plan,
    wire_signature,
)

PASSWORD_ENV = "HWSIGNER_TPM_KEY_PASSWORD"  # noqa: S105 - a variable name
HANDLE_RE = re.compile(r"handle:(?:0[xX])?([0-9a-fA-F]{1,8})")


def open_key(ref: str, options: KeyOptions) -> TpmKey:
    """The entry point ``hwsigner.keys.open_key`` uses for ``handle:`` refs and TSS2 files."""
    return TpmKey.open(ref, options)


def parse_handle(ref: str) -> int:
    """``handle:0x81000010`` (the ``0x`` is optional) as a persistent handle number."""
    match = HANDLE_RE.fullmatch(ref.strip())
    if match is None or not is_persistent(int(match.group(1), 16)):
        raise ConfigError(
            f"{ref!r} is not a persistent TPM handle",
            hint="write it as handle:0x81000010 (persistent handles are 0x81000000-0x81ffffff)",
        )
    return int(match.group(1), 16)


class TpmKey(KeyBackend):
    """A key loaded in (or persistent in) a TPM. ``open`` does the I/O; ``close`` cleans up."""

    def __init__(
        self, device: TpmDevice, obj: ESYS_TR, area: TPMT_PUBLIC, description: str, *,
        owns_device: bool = True, auth_source: str = "none", session: ESYS_TR | None = None,
    ) -> None:  # fmt: skip
        self.device = device
        self.description = description
        self._obj = obj
        self._area = area
        self._public_key = public_key_of(area)
        self._owns_device = owns_device
        self.auth_source = auth_source
        self._refused: PasswordError | None = None
        self._session = session  # the HMAC session that carries the password, if there is one
        self._plans: dict[str, SigningPlan] = {}  # by digest
        self._closed = False

    @classmethod
    def open(
        cls, ref: str, options: KeyOptions | None = None, device: TpmDevice | None = None
    ) -> TpmKey:
        """Open ``handle:0x81...`` or a TSS2 key file, on ``device`` or the process's shared one."""
        options = options or KeyOptions()
        if ref.startswith("handle:"):
            keyfile, handle = None, parse_handle(ref)
            description = f"TPM key 0x{handle:08x}"
        else:
            keyfile, handle, description = TpmKeyFile.load(ref), 0, f"TPM key {ref}"
            check_keyfile(keyfile, ref)
            blobs = unmarshal_keyfile(keyfile, ref)
        owns_device = device is None
        device = device or TpmDevice.shared(resolve_tcti(options.tpm_tcti, os.environ))
        obj = parent = session = None
        try:
            # asked before anything is loaded: a TPM without a resource manager has few slots
            password, source = key_password(options, keyfile, description)
            if keyfile is None:
                obj = device.persistent(handle, f"opening the persistent key 0x{handle:08x}")
            else:
                parent = device.parent(keyfile.parent, rsa=keyfile.rsa_parent)
                obj = device.load(parent, *blobs, f"loading {ref} into the TPM")
            with device.command(f"reading the public key of {description}"):
                area = device.esapi.read_public(obj)[0].publicArea
            check_signing_key(area, description)
            with device.command(f"setting the password of {description}"):
                device.esapi.tr_set_auth(obj, password.encode())
            if password:
                session = device.auth_session(salt_key=parent)
            return cls(
                device, obj, area, description,
                owns_device=owns_device, auth_source=source, session=session,
            )  # fmt: skip
        except BaseException:
            for loaded in (session, obj):
                if loaded is not None:
                    device.flush(loaded)
            if owns_device:
                device.release()
            raise

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
            plan = self._plans[digest] = signing_plan(self._area, digest, self.description)
        tpm_digest = plan.tpm_digest(hashlib.new(digest.lower(), message).digest())
        try:
            with self.device.command(f"signing with {self.description}"):
                signature = self.device.esapi.sign(
                    self._obj, tpm_digest, plan.scheme, session1=self._session or ESYS_TR.PASSWORD
                )
                self.device.counters.signatures += 1
        except PasswordError as exc:
            hint = exc.hint
            if "emptyAuth" in self.auth_source:
                hint = (
                    "the key file says the key has no password, yet it has one (tpm2-tools 5.7 "
                    "and older write that flag inverted): pass --tpm-key-password"
                )
            self._refused = PasswordError(
                f"wrong password for {self.description} (password {self.auth_source})",
                hint=hint,
            )
            raise self._refused from None
        return wire_signature(signature, self._public_key)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._session is not None:
            self.device.flush(self._session)
        self.device.flush(self._obj)
        if self._owns_device:
            self.device.release()


def check_keyfile(keyfile: TpmKeyFile, ref: str) -> None:
    if keyfile.has_policy:
        raise KeySourceError(
            f"{ref} is a TPM key with a policy, which hwsigner does not support",
            hint="make the key with a password (or none) instead of a policy",
        )
    if keyfile.secret is not None:
        raise KeySourceError(
            f"{ref} must be imported into the TPM before it can be loaded",
            hint="import it with tpm2_import, then write it out with tpm2_encodeobject",
        )


def unmarshal_keyfile(keyfile: TpmKeyFile, ref: str) -> tuple[TPM2B_PUBLIC, TPM2B_PRIVATE]:
    try:
        public, public_used = TPM2B_PUBLIC.unmarshal(keyfile.public)
        private, private_used = TPM2B_PRIVATE.unmarshal(keyfile.private)
        # the unmarshalling is lenient; what does not marshal back to the same bytes is garbage
        well_formed = (public_used, private_used) == (len(keyfile.public), len(keyfile.private))
        well_formed = well_formed and public.marshal() == keyfile.public
    except TSS2_Exception:
        well_formed = False
    if not well_formed:
        raise KeyFileError(
            f"{ref} is not a usable TSS2 PRIVATE KEY file: its pubkey or privkey is malformed",
            hint="give a key file written by tpm2-openssl, tpm2_encodeobject or hwsigner keygen",
        )
    return public, private


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
