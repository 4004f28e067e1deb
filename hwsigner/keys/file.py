"""Private keys in files: PEM PKCS#1, SEC1, PKCS#8 (plain or encrypted) and DER.

>>> from hwsigner.keys.file import FileKey
>>> key = FileKey.load("device.key")                             # doctest: +SKIP
>>> key.sign(b"message")[:2].hex()                               # doctest: +SKIP
'3045'
"""

from __future__ import annotations

import os

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .._safe import read_user_file
from .._tty import ask_secret
from ..certrules import CURVES, MIN_RSA_BITS
from ..errors import KeySourceError, PasswordError
from . import Digest, KeyBackend, PublicKey

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

PASSWORD_HINT = "pass --pkcs8-password, set HWSIGNER_PKCS8_PASSWORD, or run it on a terminal"  # noqa: S105


def hash_for(digest: Digest) -> hashes.HashAlgorithm:
    if digest == "SHA384":
        return hashes.SHA384()
    if digest == "SHA512":
        return hashes.SHA512()
    return hashes.SHA256()


class FileKey(KeyBackend):
    """A key held in memory by ``cryptography``; ``load`` reads it from a file."""

    def __init__(self, private_key: PrivateKey, description: str = "file key") -> None:
        check_key(private_key)
        self._private_key = private_key
        self._public_key: PublicKey = private_key.public_key()  # derived once, not per signature
        self.description = description

    @classmethod
    def load(cls, path: str, password: str | None = None) -> FileKey:
        data = read_user_file(path, "private key", "--private-key")
        return cls(parse_private_key(data, path, password), f"file {path}")

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    def sign(self, message: bytes, digest: Digest = "SHA256") -> bytes:
        algorithm = hash_for(digest)
        if isinstance(self._private_key, rsa.RSAPrivateKey):
            return self._private_key.sign(message, padding.PKCS1v15(), algorithm)
        return self._private_key.sign(message, ec.ECDSA(algorithm))


def check_key(key: object) -> None:
    """Roles Anywhere takes RSA of 2048 bits or more and EC on P-256, P-384 or P-521."""
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeySourceError(
                f"RSA key of {key.key_size} bits is too small",
                hint="IAM Roles Anywhere needs RSA keys of at least 2048 bits",
            )
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in CURVES:
            raise KeySourceError(
                f"EC curve {key.curve.name} is not supported",
                hint="use P-256, P-384 or P-521",
            )
    else:
        raise KeySourceError(
            f"{type(key).__name__.lstrip('_')} keys are not supported",
            hint="use an RSA (2048 bits or more) or EC (P-256, P-384, P-521) key",
        )


def parse_private_key(data: bytes, source: str, password: str | None = None) -> PrivateKey:
    """A PEM or DER private key; asks for the password of an encrypted PKCS#8 key."""
    encrypted = b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data
    if encrypted and password is None:
        password = secret_from_env("HWSIGNER_PKCS8_PASSWORD") or ask_secret(
            f"Password for {source}: ", instead="--pkcs8-password or HWSIGNER_PKCS8_PASSWORD"
        )
    secret = password.encode() if encrypted and password is not None else None
    load = (
        serialization.load_pem_private_key
        if b"-----BEGIN" in data
        else serialization.load_der_private_key
    )
    try:
        key = load(data, secret)
    except ValueError as exc:
        if encrypted:
            raise PasswordError(
                f"wrong password for the encrypted key {source}", hint=PASSWORD_HINT
            ) from None
        raise KeySourceError(
            f"{source} holds no private key that can be read ({_reason(exc)})",
            hint="give a PEM or DER RSA or EC private key (PKCS#1, SEC1 or PKCS#8)",
        ) from None
    except (TypeError, UnsupportedAlgorithm) as exc:
        raise KeySourceError(
            f"{source}: unsupported private key ({_reason(exc)})",
            hint="give a PEM or DER RSA or EC private key (PKCS#1, SEC1 or PKCS#8)",
        ) from None
    check_key(key)
    return key  # type: ignore[return-value]


def secret_from_env(name: str) -> str | None:
    return os.environ.get(name) or None


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[0].rstrip(".") if str(exc) else type(exc).__name__
