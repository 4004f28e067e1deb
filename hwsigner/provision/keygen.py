"""Making a new key where ``--private-key`` will find it: a token, a TPM, or a file.

    >>> import os, tempfile
    >>> from hwsigner.provision.keygen import generate_key
    >>> path = os.path.join(tempfile.mkdtemp(), "device.key")
    >>> made = generate_key(path, "ec-p256")                  # a software key, for development
    >>> made.reference == path, oct(os.stat(path).st_mode & 0o777)
    (True, '0o600')
    >>> generate_key("pkcs11:token=dev;object=device", "ec-p256").reference  # doctest: +SKIP
    'pkcs11:token=dev;id=%01;object=device'
    >>> generate_key("device.tss2", "ec-p256", tpm=True).reference        # doctest: +SKIP
    'device.tss2'

The reference decides the backend as for signing: ``pkcs11:`` is a token, ``handle:`` a
persistent TPM key, a path with ``tpm=True`` a ``TSS2 PRIVATE KEY`` file, any other path a
software key file (PKCS#8 PEM, unencrypted, mode 0600: the private key never leaves this file).
Nothing that exists is ever replaced: files are created with ``O_EXCL``.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, rsa

from ..errors import ConfigError, needs_extra
from ..keys import KeyOptions
from ..keys.file import PrivateKey
from . import FILE_ONLY, Algorithm, GeneratedKey, check_algorithm, curve_bits

MLDSA: dict[str, type[mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey]]
MLDSA = {
    "ml-dsa-44": mldsa.MLDSA44PrivateKey,
    "ml-dsa-65": mldsa.MLDSA65PrivateKey,
    "ml-dsa-87": mldsa.MLDSA87PrivateKey,
}


def generate_key(
    ref: str, algorithm: str, *, tpm: bool = False, options: KeyOptions | None = None
) -> GeneratedKey:
    options = options or KeyOptions()
    checked = check_algorithm(algorithm)
    if not ref:
        raise ConfigError("no key reference given", hint="pass --private-key")
    if checked in FILE_ONLY and (tpm or ref.startswith(("pkcs11:", "handle:"))):
        raise ConfigError(
            f"{checked} keys cannot be made in a PKCS#11 token or a TPM (SoftHSM 2.6 and "
            "TPM 2.0 have no ML-DSA)",
            hint="give --private-key a file path for an ML-DSA key",
        )
    if ref.startswith("pkcs11:"):
        if tpm:
            raise ConfigError("--tpm and a pkcs11: URI contradict each other")
        with needs_extra("pkcs11"):
            from ..keys import pkcs11
        return GeneratedKey(*pkcs11.generate_key(ref, checked, options.pkcs11_lib))
    if tpm or ref.startswith("handle:"):
        with needs_extra("tpm"):
            from ..keys import tpm as tpm_keys
        made = tpm_keys.generate_key(
            ref, checked, password=options.tpm_key_password, tcti=options.tpm_tcti
        )
        if made.pem is not None:
            create_exclusive(ref, made.pem, 0o600, "TPM key file")
        return GeneratedKey(made.public_key, made.reference, made.description)
    return generate_file_key(ref, checked)


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


__all__ = ["create_exclusive", "generate_file_key", "generate_key", "new_private_key"]
