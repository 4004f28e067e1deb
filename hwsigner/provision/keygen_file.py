"""Software keys in files, for development: the private key never leaves this file (mode 0600).

    >>> from hwsigner.provision.keygen_file import generate_file_key
    >>> made = generate_file_key("/tmp/dev.key", "ec-p256")            # doctest: +SKIP
    >>> made.reference                                                  # doctest: +SKIP
    '/tmp/dev.key'

The file is PKCS#8 PEM, unencrypted, created with ``O_EXCL``: an existing file is never replaced.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, rsa

from ..errors import ConfigError
from ..keys.file import PrivateKey
from . import Algorithm, GeneratedKey, curve_bits

MLDSA: dict[str, type[mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey]]
MLDSA = {
    "ml-dsa-44": mldsa.MLDSA44PrivateKey,
    "ml-dsa-65": mldsa.MLDSA65PrivateKey,
    "ml-dsa-87": mldsa.MLDSA87PrivateKey,
}


def new_private_key(algorithm: Algorithm) -> PrivateKey:
    if algorithm.startswith("ml-dsa-"):
        return MLDSA[algorithm].generate()
    if algorithm.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=curve_bits(algorithm))
    curve = ec.SECP256R1() if algorithm == "ec-p256" else ec.SECP384R1()
    return ec.generate_private_key(curve)


def create_exclusive(path: str, data: bytes, mode: int, what: str) -> None:
    """Write a new file; refuse when ``path`` exists (``O_EXCL``: no race with another writer)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ConfigError(
            f"{path} already exists; it is not overwritten",
            hint=f"choose a new path for the {what}, or move the old file away first",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}", hint="check the path") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as exc:
        os.unlink(path)
        raise ConfigError(f"cannot write {path}: {exc.strerror}", hint="check the disk") from None


def generate_file_key(path: str, algorithm: Algorithm) -> GeneratedKey:
    """A new software key, written as unencrypted PKCS#8 PEM readable only by its owner."""
    key = new_private_key(algorithm)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    create_exclusive(path, pem, 0o600, "key file")
    return GeneratedKey(key.public_key(), path, f"a software {algorithm} key in {path}")
