"""Signing keys created inside a TPM 2.0: a ``TSS2 PRIVATE KEY`` file, or a persistent handle.

    >>> from hwsigner.provision.keygen_tpm import generate_tpm_key
    >>> made = generate_tpm_key("device.tss2", "ec-p256",
    ...                         tcti="swtpm:host=127.0.0.1,port=2321")   # doctest: +SKIP
    >>> made = generate_tpm_key("handle:0x81000010", "ec-p256")      # doctest: +SKIP

The key is made under the owner hierarchy's standard ECC P-256 storage primary (the one
``hwsigner.keys.tpm_device`` creates, as tpm2-openssl and AWS's helper do), so the file loads
with ``openssl pkey -provider tpm2`` and ``aws_signing_helper`` alike. Only the TPM can unwrap the
file's private part. The key is fixed to this TPM and its parent, may only sign, and has no
fixed scheme (ECDSA or RSASSA with any hash, chosen per signature).
"""

from __future__ import annotations

import os

from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_CAP, TPM2_ECC, TPMA_OBJECT
from tpm2_pytss.types import (
    TPM2B_PRIVATE,
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE_CREATE,
    TPMS_ECC_PARMS,
    TPMS_RSA_PARMS,
    TPMS_SENSITIVE_CREATE,
    TPMT_ECC_SCHEME,
    TPMT_KDF_SCHEME,
    TPMT_PUBLIC,
    TPMT_RSA_SCHEME,
    TPMT_SYM_DEF_OBJECT,
    TPMU_PUBLIC_PARMS,
)

from ..errors import ConfigError
from ..keys.tpm import parse_handle
from ..keys.tpm_device import OWNER, TpmDevice, resolve_tcti
from ..keys.tpm_keyfile import TpmKeyFile
from ..keys.tpm_signing import public_key_of
from . import Algorithm, GeneratedKey, curve_bits
from .keygen_file import create_exclusive

CURVES = {"ec-p256": TPM2_ECC.NIST_P256, "ec-p384": TPM2_ECC.NIST_P384}
SIGNING_KEY = (
    TPMA_OBJECT.SIGN_ENCRYPT
    | TPMA_OBJECT.USERWITHAUTH
    | TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
)


def signing_template(algorithm: Algorithm) -> TPM2B_PUBLIC:
    """An unrestricted signing key with a NULL scheme: the signer picks the scheme and hash."""
    no_symmetric = TPMT_SYM_DEF_OBJECT(algorithm=TPM2_ALG.NULL)
    if algorithm.startswith("rsa-"):
        kind = TPM2_ALG.RSA
        parameters = TPMU_PUBLIC_PARMS(
            rsaDetail=TPMS_RSA_PARMS(
                symmetric=no_symmetric,
                scheme=TPMT_RSA_SCHEME(scheme=TPM2_ALG.NULL),
                keyBits=curve_bits(algorithm),
                exponent=0,  # 0 means 65537
            )
        )
    else:
        kind = TPM2_ALG.ECC
        parameters = TPMU_PUBLIC_PARMS(
            eccDetail=TPMS_ECC_PARMS(
                symmetric=no_symmetric,
                scheme=TPMT_ECC_SCHEME(scheme=TPM2_ALG.NULL),
                curveID=CURVES[algorithm],
                kdf=TPMT_KDF_SCHEME(scheme=TPM2_ALG.NULL),
            )
        )
    area = TPMT_PUBLIC(
        type=kind,
        nameAlg=TPM2_ALG.SHA256,
        objectAttributes=SIGNING_KEY,
        authPolicy=b"",
        parameters=parameters,
    )
    return TPM2B_PUBLIC(publicArea=area)


def generate_tpm_key(
    ref: str, algorithm: Algorithm, *, password: str | None = None, tcti: str | None = None
) -> GeneratedKey:
    """A new key in the TPM: ``handle:0x81...`` makes it persistent there, else ``ref`` is the
    path of the ``TSS2 PRIVATE KEY`` file to write (never over an existing file)."""
    handle = parse_handle(ref) if ref.startswith("handle:") else None
    if handle is None and os.path.lexists(ref):
        raise ConfigError(
            f"{ref} already exists; it is not overwritten",
            hint="choose a new path for the TPM key file, or move the old file away first",
        )
    sensitive = TPM2B_SENSITIVE_CREATE(
        sensitive=TPMS_SENSITIVE_CREATE(userAuth=(password or "").encode())
    )
    with TpmDevice.open(resolve_tcti(tcti, os.environ)) as device:
        if handle is not None:
            refuse_used_handle(device, handle)
        parent = device.primary(OWNER)
        with device.command(f"creating an {algorithm} key in the TPM"):
            private, public = device.esapi.create(parent, sensitive, signing_template(algorithm))[
                :2
            ]
        public_key = public_key_of(public.publicArea)
        if handle is not None:
            make_persistent(device, parent, public, private, handle)
            return GeneratedKey(
                public_key, f"handle:0x{handle:08x}", f"an {algorithm} TPM key at 0x{handle:08x}"
            )
    keyfile = TpmKeyFile(
        parent=OWNER, public=public.marshal(), private=private.marshal(), empty_auth=not password
    )
    create_exclusive(ref, keyfile.to_pem(), 0o600, "TPM key file")
    return GeneratedKey(public_key, ref, f"an {algorithm} TPM key in {ref}")


def refuse_used_handle(device: TpmDevice, handle: int) -> None:
    with device.command(f"listing the TPM's persistent handles from 0x{handle:08x}"):
        _, data = device.esapi.get_capability(TPM2_CAP.HANDLES, handle, 1)
    if any(int(found) == handle for found in data.data.handles):
        raise ConfigError(
            f"the TPM already holds a key at handle 0x{handle:08x}; nothing was changed",
            hint="choose a free handle (tpm2_getcap handles-persistent lists the used ones)",
        )


def make_persistent(
    device: TpmDevice, parent: ESYS_TR, public: TPM2B_PUBLIC, private: TPM2B_PRIVATE, handle: int
) -> None:
    loaded = device.load(parent, public, private, "loading the new key into the TPM")
    try:
        with device.command(f"making the new key persistent at 0x{handle:08x}"):
            persistent = device.esapi.evict_control(ESYS_TR.OWNER, loaded, handle)
            device.esapi.tr_close(persistent)
    finally:
        device.flush(loaded)
