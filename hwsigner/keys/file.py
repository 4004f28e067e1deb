"""Private keys in files: PEM PKCS#1, SEC1, PKCS#8 (plain or encrypted), DER and PKCS#12.

>>> from hwsigner.devpki import key_pem, new_key
>>> from hwsigner.keys.file import FileKey
>>> key = FileKey.from_pem(key_pem(new_key("rsa-2048")), source="device.key")
>>> len(key.sign(b"message")), key.description              # PKCS#1 v1.5 over SHA-256
(256, 'file device.key')
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from .._safe import read_user_file
from ..errors import CertificateError, KeySourceError, PasswordError
from ..x509rules import CURVES, MIN_RSA_BITS
from .backend import Digest, KeyBackend, PublicKey, ask_secret

MLDSAPrivateKey = mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | MLDSAPrivateKey
MLDSA_PRIVATE_KEYS = (mldsa.MLDSA44PrivateKey, mldsa.MLDSA65PrivateKey, mldsa.MLDSA87PrivateKey)
KEY_HINT = "give a PEM or DER RSA, EC or ML-DSA private key (PKCS#1, SEC1 or PKCS#8)"

PASSWORD_HINT = "pass --pkcs8-password, set HWSIGNER_PKCS8_PASSWORD, or run it on a terminal"  # noqa: S105


def hash_for(digest: Digest) -> hashes.HashAlgorithm:
    if digest == "SHA384":
        return hashes.SHA384()
    if digest == "SHA512":
        return hashes.SHA512()
    return hashes.SHA256()


def certificate_hash(key: object) -> hashes.SHA256 | None:
    """The hash a CA key signs certificates and CRLs with: SHA-256, or none for ML-DSA, which
    signs the data itself (RFC 9881)."""
    return None if isinstance(key, MLDSA_PRIVATE_KEYS) else hashes.SHA256()


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
        return cls.from_pem(data, source=path, password=password)

    @classmethod
    def from_pem(cls, data: bytes, *, source: str, password: str | None = None) -> FileKey:
        """The private key in PEM (or DER) ``data``, such as a combo PEM's; ``source`` names it
        in errors and the password prompt."""
        return cls(parse_private_key(data, source, password), f"file {source}")

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    def sign(self, message: bytes, digest: Digest = "SHA256") -> bytes:
        if isinstance(self._private_key, MLDSA_PRIVATE_KEYS):
            return self._private_key.sign(message)  # pure ML-DSA, empty context: no digest
        algorithm = hash_for(digest)
        if isinstance(self._private_key, rsa.RSAPrivateKey):
            return self._private_key.sign(message, padding.PKCS1v15(), algorithm)
        return self._private_key.sign(message, ec.ECDSA(algorithm))


def check_key(key: object) -> None:
    """Roles Anywhere takes RSA of 2048 bits or more, EC on P-256, P-384 or P-521, and
    ML-DSA-44/65/87."""
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
    elif not isinstance(key, MLDSA_PRIVATE_KEYS):
        raise KeySourceError(
            f"{type(key).__name__.lstrip('_')} keys are not supported",
            hint="use an RSA (2048 bits or more), EC (P-256, P-384, P-521) or ML-DSA key",
        )


def parse_private_key(data: bytes, source: str, password: str | None = None) -> PrivateKey:
    """A PEM or DER private key; asks for the password of an encrypted PKCS#8 key."""
    encrypted = b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data
    encrypted = encrypted or (b"-----BEGIN" not in data and _der_needs_password(data))
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
            hint=KEY_HINT,
        ) from None
    except (TypeError, UnsupportedAlgorithm) as exc:
        raise KeySourceError(
            f"{source}: unsupported private key ({_reason(exc)})",
            hint=KEY_HINT,
        ) from None
    check_key(key)
    return key  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Pkcs12File:
    """What a PKCS#12 file holds: the key, its certificate, and any further certificates."""

    key: FileKey
    certificate: x509.Certificate
    others: tuple[x509.Certificate, ...]


def load_pkcs12(data: bytes, source: str, password: str | None = None) -> Pkcs12File:
    """A PKCS#12 file with its certificate and key; asks for the password when one is needed."""
    if password is None:
        password = secret_from_env("HWSIGNER_PKCS8_PASSWORD")
    try:
        loaded = _load_pkcs12(data, password)
        if loaded is None and password is None:
            password = ask_secret(
                f"Password for {source}: ", instead="--pkcs8-password or HWSIGNER_PKCS8_PASSWORD"
            )
            loaded = _load_pkcs12(data, password)
    except ValueError:
        raise CertificateError(
            f"{source} is not a certificate (PEM or DER) or a PKCS#12 file",
            hint="give --certificate a PEM certificate, a PKCS#12 file or a pkcs11: URI",
        ) from None
    if loaded is None:
        raise PasswordError(f"wrong password for the PKCS#12 file {source}", hint=PASSWORD_HINT)
    if loaded.cert is None or loaded.key is None:
        raise CertificateError(
            f"{source} must hold a certificate and its private key",
            hint="export the PKCS#12 file with both the certificate and the key",
        )
    others = tuple(c.certificate for c in loaded.additional_certs)
    key = FileKey(loaded.key, f"file {source}")  # type: ignore[arg-type]
    return Pkcs12File(key, loaded.cert.certificate, others)


def _load_pkcs12(data: bytes, password: str | None) -> pkcs12.PKCS12KeyAndCertificates | None:
    """The parsed file, or None when the password is wrong (or one is needed)."""
    try:
        return pkcs12.load_pkcs12(data, password.encode() if password is not None else None)
    except ValueError as exc:
        if "password" in str(exc).lower() or "mac" in str(exc).lower():
            return None
        raise


def _der_needs_password(data: bytes) -> bool:
    """An encrypted PKCS#8 DER key (EncryptedPrivateKeyInfo), which has no PEM label to tell."""
    try:
        serialization.load_der_private_key(data, None)
    except TypeError:
        return True
    except (ValueError, UnsupportedAlgorithm):
        pass
    return False


def secret_from_env(name: str) -> str | None:
    return os.environ.get(name) or None


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[0].rstrip(".") if str(exc) else type(exc).__name__


__all__ = [
    "MLDSA_PRIVATE_KEYS", "FileKey", "MLDSAPrivateKey", "Pkcs12File", "PrivateKey",
    "certificate_hash", "check_key", "hash_for", "load_pkcs12", "parse_private_key",
    "secret_from_env",
]  # fmt: skip
