"""Keys the TPM makes: the storage primary that key files hang under, and new signing keys.

    >>> from hwsigner.keys.tpm import generate_key
    >>> made = generate_key("device.tss2", "ec-p256",
    ...                     tcti="swtpm:host=127.0.0.1,port=2321")       # doctest: +SKIP
    >>> made.reference, made.pem is not None                           # doctest: +SKIP
    ('device.tss2', True)
    >>> generate_key("handle:0x81000010", "ec-p256").pem is None        # doctest: +SKIP
    True

One template builder, ``key_template``, makes both kinds. The storage primary is the TCG one (EK
Credential Profile templates L-1 and L-2, empty unique field, noDA) that tpm2-openssl,
tpm2-tss-engine, the openssl_tpm2_engine and AWS's helper use: the same template always gives the
same primary, so their key files and ours load under each other's. A new signing key is fixed to
this TPM and its parent, may only sign, and has no fixed scheme (ECDSA or RSASSA with any hash,
chosen per signature). Only the TPM can unwrap a key file's private part.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    TPMU_SYM_KEY_BITS,
    TPMU_SYM_MODE,
)

from ...errors import ConfigError
from ..backend import PublicKey
from .device import HIERARCHIES, OWNER, PARENT_PASSWORD_ENV, TpmDevice, parse_handle, resolve_tcti
from .keyfile import TpmKeyFile
from .signing import public_key_of

ALGORITHMS = {  # name: (type, curve or modulus size)
    "ec-p256": (TPM2_ALG.ECC, TPM2_ECC.NIST_P256),
    "ec-p384": (TPM2_ALG.ECC, TPM2_ECC.NIST_P384),
    "rsa-2048": (TPM2_ALG.RSA, 2048),
    "rsa-3072": (TPM2_ALG.RSA, 3072),
}
EVERY_KEY = (
    TPMA_OBJECT.USERWITHAUTH
    | TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
)
STORAGE_KEY = EVERY_KEY | TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.DECRYPT | TPMA_OBJECT.NODA
SIGNING_KEY = EVERY_KEY | TPMA_OBJECT.SIGN_ENCRYPT


@dataclass(frozen=True, slots=True)
class NewTpmKey:
    """A key just made in the TPM: ``pem`` is the key file to write at ``reference`` (for a
    persistent handle there is nothing to write)."""

    public_key: PublicKey
    reference: str
    description: str
    pem: bytes | None = None


def key_template(algorithm: str, *, storage: bool = False) -> TPM2B_PUBLIC:
    """The public template of a new key: a signing key (no scheme: the signer picks it), or with
    ``storage`` a restricted decryption key (AES-128-CFB) that other keys are wrapped under."""
    if algorithm not in ALGORITHMS:
        raise ConfigError(
            f"unknown key algorithm {algorithm!r}", hint=f"use one of {', '.join(ALGORITHMS)}"
        )
    kind, size = ALGORITHMS[algorithm]
    symmetric = TPMT_SYM_DEF_OBJECT(algorithm=TPM2_ALG.NULL)
    if storage:
        symmetric = TPMT_SYM_DEF_OBJECT(
            algorithm=TPM2_ALG.AES,
            keyBits=TPMU_SYM_KEY_BITS(aes=128),
            mode=TPMU_SYM_MODE(aes=TPM2_ALG.CFB),
        )
    if kind == TPM2_ALG.RSA:
        rsa_scheme = TPMT_RSA_SCHEME(scheme=TPM2_ALG.NULL)
        parameters = TPMU_PUBLIC_PARMS(
            rsaDetail=TPMS_RSA_PARMS(symmetric=symmetric, scheme=rsa_scheme, keyBits=size)
        )  # an exponent of 0 means 65537
    else:
        ecc_scheme, kdf = (
            TPMT_ECC_SCHEME(scheme=TPM2_ALG.NULL),
            TPMT_KDF_SCHEME(scheme=TPM2_ALG.NULL),
        )
        parameters = TPMU_PUBLIC_PARMS(
            eccDetail=TPMS_ECC_PARMS(symmetric=symmetric, scheme=ecc_scheme, curveID=size, kdf=kdf)
        )
    area = TPMT_PUBLIC(
        type=kind,
        nameAlg=TPM2_ALG.SHA256,
        objectAttributes=STORAGE_KEY if storage else SIGNING_KEY,
        authPolicy=b"",
        parameters=parameters,
    )
    return TPM2B_PUBLIC(publicArea=area)


def storage_template(rsa: bool = False) -> TPM2B_PUBLIC:
    """The standard storage primary's template: ECC P-256, or RSA 2048 for an ``rsaParent``."""
    return key_template("rsa-2048" if rsa else "ec-p256", storage=True)


def parent(device: TpmDevice, handle: int, *, rsa: bool = False) -> ESYS_TR:
    """A key file's parent: a hierarchy means its storage primary; else a persistent key."""
    if handle in HIERARCHIES:
        return device.primary(handle, storage_template(rsa))
    doing = f"opening the parent key 0x{handle:08x}"
    obj = device.persistent(handle, doing)
    parent_password = os.environ.get(PARENT_PASSWORD_ENV)
    if parent_password:
        with device.command(doing):
            device.esapi.tr_set_auth(obj, parent_password.encode())
    return obj


def generate_key(
    ref: str, algorithm: str, *, password: str | None = None, tcti: str | None = None
) -> NewTpmKey:
    """A new signing key under the owner's storage primary: ``handle:0x81...`` makes it
    persistent there; any other ``ref`` is the path of its key file, returned as ``pem`` for the
    caller to write (a path that exists is refused before the TPM does any work)."""
    template = key_template(algorithm)
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
        owner = device.primary(OWNER, storage_template())
        with device.command(f"creating an {algorithm} key in the TPM"):
            private, public = device.esapi.create(owner, sensitive, template)[:2]
        public_key = public_key_of(public.publicArea)
        if handle is not None:
            make_persistent(device, owner, public, private, handle)
            where = f"handle:0x{handle:08x}"
            return NewTpmKey(public_key, where, f"an {algorithm} TPM key at 0x{handle:08x}")
    keyfile = TpmKeyFile(
        parent=OWNER, public=public.marshal(), private=private.marshal(), empty_auth=not password
    )
    return NewTpmKey(public_key, ref, f"an {algorithm} TPM key in {ref}", keyfile.to_pem())


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


__all__ = [
    "NewTpmKey", "generate_key", "key_template", "make_persistent", "parent", "refuse_used_handle",
    "storage_template",
]  # fmt: skip
