"""Every error hwsigner raises, branched by who has to act.

    HwSignerError                 the root: a message a user can act on, and a hint
    ├── ConfigError               the inputs are wrong (flags, files, ARNs) or an extra is missing
    ├── KeySourceError            the key cannot be opened or used: device, module, token
    │   └── PasswordError         a PIN or password was refused (never retried)
    ├── CertificateError          the certificate or chain is unusable or does not match
    ├── ServiceError              IAM Roles Anywhere answered with an error
    └── NetworkError              the endpoint could not be reached

    >>> from hwsigner.errors import ConfigError
    >>> str(ConfigError("no certificate given", hint="pass --certificate"))
    'no certificate given'

Messages never contain secrets: callers pass names and paths, never PINs or keys.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from types import TracebackType


class HwSignerError(Exception):
    """The root of hwsigner's errors: ``str(err)`` is one line, ``err.hint`` says what to do."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(HwSignerError):
    """The user's inputs are wrong (a flag, a file, an ARN, a region) or an extra is missing."""


class KeySourceError(HwSignerError):
    """The private key cannot be opened or used: a device, a module, a token."""


class PasswordError(KeySourceError):
    """A PIN or password was refused. It is reported once and never retried automatically."""


class CertificateError(HwSignerError):
    """The certificate or chain is unreadable, breaks a rule, or does not match the key."""


class ServiceError(HwSignerError):
    """IAM Roles Anywhere (or the emulator) answered with an error."""

    def __init__(
        self, error_type: str, message: str, *, status: int, hint: str | None = None
    ) -> None:
        super().__init__(f"{error_type}: {message}" if message else error_type, hint=hint)
        self.error_type = error_type
        self.status = status


class NetworkError(HwSignerError):
    """The endpoint could not be reached, or the connection broke."""


# optional extra -> the top-level modules it installs
EXTRAS = {"pkcs11": ("pkcs11",), "tpm": ("tpm2_pytss",), "boto3": ("boto3", "botocore")}


class needs_extra:  # lower case: used as a function, ``with needs_extra("pkcs11"):``
    """Turn the missing library of an optional extra into an error that names the extra.

    >>> with needs_extra("pkcs11"):
    ...     from hwsigner.keys import pkcs11

    A class rather than a ``contextlib.contextmanager``: a cached ``credential-process`` loads
    this module, and ``contextlib`` is not loaded at start-up.
    """

    __slots__ = ("extra",)

    def __init__(self, extra: str) -> None:
        self.extra = extra

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not isinstance(exc, ModuleNotFoundError):
            return
        library = (exc.name or "").split(".")[0]
        if library not in EXTRAS[self.extra]:
            return
        raise ConfigError(
            f"the Python module {library!r} (hwsigner[{self.extra}]) is not installed",
            hint=f"pip install 'hwsigner[{self.extra}]'",
        ) from exc


__all__ = [
    "CertificateError", "ConfigError", "HwSignerError", "KeySourceError", "NetworkError",
    "PasswordError", "ServiceError", "needs_extra",
]  # fmt: skip
