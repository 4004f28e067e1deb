"""hwsigner: AWS IAM Roles Anywhere credentials from keys that never leave hardware.

    >>> import hwsigner, tempfile
    >>> from hwsigner.devpki import DevPki
    >>> from hwsigner.emulator import TrustAnchors, running
    >>> pki = DevPki.create(tempfile.mkdtemp())        # a test CA; a device key it certifies
    >>> cert, key = pki.new_leaf("ec-p256", "device")
    >>> ra = "arn:aws:rolesanywhere:us-east-1:111122223333:"
    >>> with running(TrustAnchors.load([str(pki.root_cert)])) as emulator:  # the service, offline
    ...     credentials = hwsigner.get_credentials(
    ...         certificate=str(cert), private_key=str(key), intermediates=str(pki.issuing_cert),
    ...         trust_anchor_arn=ra + "trust-anchor/ta", profile_arn=ra + "profile/pr",
    ...         role_arn="arn:aws:iam::111122223333:role/app", endpoint=emulator.url)
    >>> credentials.access_key_id.startswith("ASIA")
    True

With a token, ``certificate="pkcs11:token=dev;object=ra"`` and no ``private_key``; with a TPM,
``private_key="device.tss2"``; without ``endpoint``, the real service of the ARNs' region.

Names are imported on first use, so ``import hwsigner`` loads no backend library (and not
``cryptography``).
"""

_TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "CertificateError": "errors",
    "ConfigError": "errors",
    "CredentialKeeper": "delivery.keeper",
    "Credentials": "credentials",
    "HwSignerError": "errors",
    "Identity": "identity",
    "KeyBackend": "keys",
    "KeyOptions": "keys",
    "KeySourceError": "errors",
    "NetworkError": "errors",
    "PasswordError": "errors",
    "ServiceError": "errors",
    "Session": "session",
    "Settings": "settings",
    "boto3_session": "session",
    "get_credentials": "session",
    "load_identity": "identity",
    "open_key": "keys",
}
# deprecated name -> module that defines it (they warn when called; not in __all__)
_DEPRECATED = {"SessionParams": "rolesanywhere", "create_session": "session"}

__all__ = sorted(_EXPORTS)

if _TYPE_CHECKING:
    from typing import Any as _Any

    from .credentials import Credentials as Credentials
    from .delivery.keeper import CredentialKeeper as CredentialKeeper
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
    from .session import Session as Session
    from .session import boto3_session as boto3_session
    from .session import get_credentials as get_credentials
    from .settings import Settings as Settings


def __getattr__(name: str) -> "_Any":
    module = _EXPORTS.get(name) or _DEPRECATED.get(name)
    if module is None:
        raise AttributeError(f"module 'hwsigner' has no attribute {name!r}")
    from importlib import import_module  # here, not at the top: start-up time

    value = getattr(import_module(f".{module}", __name__), name)
    if name in _EXPORTS:
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
