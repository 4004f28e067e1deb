"""TSS and TPM response codes, turned into errors a user can act on.

    >>> from tpm2_pytss.constants import TPM2_RC
    >>> from tpm2_pytss.TSS2_Exception import TSS2_Exception
    >>> from hwsigner.keys.tpm.errors import tpm_error
    >>> exc = TSS2_Exception(TPM2_RC.AUTH_FAIL | 0x100)   # a wrong password, for handle 1
    >>> tpm_error(exc, "signing with key.tss2", "device:/dev/tpmrm0")
    PasswordError('the TPM refused the password while signing with key.tss2')

A response code is read as the TPM specification (part 2, 6.6) lays it out: format-one codes
carry the handle, parameter or session number in bits 8-11, which ``TSS2_Exception.error``
strips; bits 16-23 name the TSS layer that answered (0 for the TPM itself, 7 for ESAPI, 10 for
the TCTI). A lost connection is its own class, ``TpmConnectionLost``: the key reconnects once.
"""

from __future__ import annotations

import logging
import os

from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import TPM2_RC

from ...errors import HwSignerError, KeySourceError, PasswordError

ESAPI_LAYER = 7
BAD_SEQUENCE = 0x07  # TSS2_BASE_RC_BAD_SEQUENCE: ESAPI's state after a half-done exchange
LOST = (0x08, 0x0A)  # TSS2_BASE_RC_NO_CONNECTION and _IO_ERROR, in whichever layer reports them
# the TPM no longer holds an object or session we loaded: it restarted (swtpm's TCTI connects
# anew for every command), or another program flushed it
FORGOTTEN = (
    *range(TPM2_RC.REFERENCE_H0, TPM2_RC.REFERENCE_H6 + 1),
    *range(TPM2_RC.REFERENCE_S0, TPM2_RC.REFERENCE_S6 + 1),
)
NO_ROOM = (TPM2_RC.OBJECT_MEMORY, TPM2_RC.SESSION_MEMORY, TPM2_RC.OBJECT_HANDLES)
WRONG_PARENT = (TPM2_RC.INTEGRITY, TPM2_RC.BINDING)

LOCKOUT_HINT = (
    "each wrong password counts toward the TPM's dictionary-attack lockout, so hwsigner never "
    "retries: check --tpm-key-password or HWSIGNER_TPM_KEY_PASSWORD"
)


class TpmConnectionLost(KeySourceError):
    """The connection to the TPM broke, or the TPM forgot what it had loaded for us: reconnecting
    and loading again may help."""


def code(exc: TSS2_Exception) -> int:
    """The response code without its handle/parameter/session number."""
    return int(exc.error)


def layer(exc: TSS2_Exception) -> int:
    return (int(exc.rc) >> 16) & 0xFF


def is_wrong_password(exc: TSS2_Exception) -> bool:
    return layer(exc) == 0 and code(exc) in (TPM2_RC.AUTH_FAIL, TPM2_RC.BAD_AUTH)


def is_wrong_parent(exc: TSS2_Exception) -> bool:
    return layer(exc) == 0 and code(exc) in WRONG_PARENT


def is_no_such_handle(exc: TSS2_Exception) -> bool:
    return layer(exc) == 0 and code(exc) == TPM2_RC.HANDLE


def is_connection_lost(exc: TSS2_Exception) -> bool:
    """The TCTI lost the TPM, ESAPI refuses every command since it did ("wrong order"), or the
    TPM restarted and forgot our objects."""
    base = int(exc.rc) & 0xFFFF
    if layer(exc) == 0:
        return base in FORGOTTEN
    return base in LOST or (layer(exc), base) == (ESAPI_LAYER, BAD_SEQUENCE)


def tpm_error(
    exc: TSS2_Exception, doing: str, tcti: str, password_hint: str | None = None
) -> HwSignerError:
    """The error to raise for a TSS/TPM failure that happened while ``doing`` something."""
    if is_connection_lost(exc):
        return TpmConnectionLost(
            f"lost the connection to the TPM ({tcti}) while {doing}: {exc}",
            hint="check that the TPM (or swtpm) is still running",
        )
    if is_wrong_password(exc):
        return PasswordError(
            f"the TPM refused the password while {doing}", hint=password_hint or LOCKOUT_HINT
        )
    if layer(exc) == 0 and code(exc) == TPM2_RC.LOCKOUT:
        return KeySourceError(
            f"the TPM is in dictionary-attack lockout (too many wrong passwords) while {doing}",
            hint="wait for the lockout to expire, or clear it: tpm2_dictionarylockout -c",
        )
    if layer(exc) == 0 and code(exc) in NO_ROOM:
        return KeySourceError(
            f"the TPM has no free object slots while {doing}",
            hint="another program left objects loaded (tpm2_flushcontext -t frees them); "
            "use the resource manager, device:/dev/tpmrm0, where there is one",
        )
    if is_wrong_parent(exc):
        return KeySourceError(
            f"the TPM rejected the key while {doing}: it was made by another TPM, or under "
            f"another parent ({exc})",
            hint=f"use a key made on this TPM ({tcti}), or check --tpm-tcti",
        )
    return KeySourceError(
        f"the TPM failed while {doing}: {exc}", hint=f"TPM reached through {tcti}"
    )


def unreachable(tcti: str, exc: Exception) -> KeySourceError:
    """The TCTI could not be opened: say which one, and why when it is a device file."""
    reason = str(exc)
    hint = "pass --tpm-tcti or set TPM2TOOLS_TCTI (e.g. swtpm:host=127.0.0.1,port=2321)"
    name, _, conf = tcti.partition(":")
    if name == "device":
        path = conf or "/dev/tpmrm0"
        if not os.path.exists(path):
            reason = f"{path} does not exist"
            hint = (
                f"this machine has no TPM at {path} (is the tpm_crb/tpm_tis driver loaded?); {hint}"
            )
        elif not os.access(path, os.R_OK | os.W_OK):
            reason = f"no permission to use {path}"
            hint = "add yourself to the tss group (sudo usermod -aG tss $USER), then log in again"
    return KeySourceError(f"cannot reach the TPM through TCTI {tcti!r}: {reason}", hint=hint)


def quiet_tss_logging() -> None:
    """The TSS libraries log errors to stderr themselves; hwsigner reports each error once.

    ``TSS2_LOG`` is read by the C libraries when they first log, so this works after import.
    A ``TSS2_LOG`` the user set is kept (it is how one debugs the TSS), and so is ``--debug``.
    """
    if "TSS2_LOG" not in os.environ and not logging.getLogger("hwsigner").isEnabledFor(
        logging.DEBUG
    ):
        os.environ["TSS2_LOG"] = "all+NONE"


__all__ = [
    "TpmConnectionLost", "code", "is_connection_lost", "is_no_such_handle", "is_wrong_parent",
    "is_wrong_password", "layer", "quiet_tss_logging", "tpm_error", "unreachable",
]  # fmt: skip
