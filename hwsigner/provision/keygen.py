"""Making a new key where ``--private-key`` will find it: a token, a TPM, or a file.

    >>> from hwsigner.provision.keygen import generate_key
    >>> generate_key("pkcs11:token=dev;object=device", "ec-p256").reference  # doctest: +SKIP
    'pkcs11:token=dev;id=%01;object=device'
    >>> generate_key("device.tss2", "ec-p256", tpm=True).reference        # doctest: +SKIP
    'device.tss2'
    >>> generate_key("handle:0x81000010", "rsa-2048").reference           # doctest: +SKIP
    'handle:0x81000010'

The reference decides the backend as for signing: ``pkcs11:`` is a token, ``handle:`` a
persistent TPM key, a path with ``tpm=True`` a ``TSS2 PRIVATE KEY`` file, any other path a
software key file. Nothing that exists is ever replaced.
"""

from __future__ import annotations

from ..errors import ConfigError, needs_extra
from ..keys import KeyOptions
from . import FILE_ONLY, GeneratedKey, check_algorithm
from .keygen_file import create_exclusive, generate_file_key


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
