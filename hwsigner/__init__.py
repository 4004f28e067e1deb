"""hwsigner: AWS IAM Roles Anywhere credentials from keys that never leave hardware.

    >>> import hwsigner
    >>> identity, key = hwsigner.load_identity("pkcs11:token=dev;object=ra")   # doctest: +SKIP

Names are imported on first use, so ``import hwsigner`` loads no backend library (and not
``cryptography``).
"""

_TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "CertificateError": "errors",
    "ConfigError": "errors",
    "Credentials": "credentials",
    "CredentialKeeper": "refresher",
    "HwSignerError": "errors",
    "Identity": "identity",
    "KeyBackend": "keys",
    "KeyOptions": "keys",
    "KeySourceError": "errors",
    "NetworkError": "errors",
    "PasswordError": "errors",
    "ServiceError": "errors",
    "SessionParams": "rolesanywhere",
    "boto3_session": "api",
    "create_session": "api",
    "load_identity": "identity",
    "open_key": "keys",
}

__all__ = sorted(_EXPORTS)

if _TYPE_CHECKING:
    from typing import Any as _Any

    from .api import boto3_session as boto3_session
    from .api import create_session as create_session
    from .credentials import Credentials as Credentials
    from .errors import CertificateError as CertificateError
    from .errors import ConfigError as ConfigError
    from .errors import HwSignerError as HwSignerError
    from .errors import KeySourceError as KeySourceError
    from .errors import NetworkError as NetworkError
    from .errors import PasswordError as PasswordError
    from .errors import ServiceError as ServiceError
    from .identity import Identity as Identity
    from .identity import load_identity as load_identity
    from .keys import KeyBackend as KeyBackend
    from .keys import KeyOptions as KeyOptions
    from .keys import open_key as open_key
    from .refresher import CredentialKeeper as CredentialKeeper
    from .rolesanywhere import SessionParams as SessionParams


def __getattr__(name: str) -> "_Any":
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hwsigner' has no attribute {name!r}")
    from importlib import import_module  # here, not at the top: start-up time

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
