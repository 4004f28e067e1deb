"""Private keys behind one small interface, chosen by the form of the reference.

    >>> import os, tempfile
    >>> from hwsigner.keys import KeyOptions, open_key
    >>> from hwsigner.provision.keygen import generate_key
    >>> path = generate_key(os.path.join(tempfile.mkdtemp(), "dev.key"), "ec-p256").reference
    >>> with open_key(path) as key:
    ...     signature = key.sign(b"message")                  # DER ECDSA over SHA-256
    >>> signature[:1].hex()
    '30'
    >>> key = open_key("pkcs11:token=dev;object=ra?pin-source=file:/run/pin")  # doctest: +SKIP
    >>> key = open_key("handle:0x81000010", KeyOptions(no_tpm_key_password=True))  # doctest: +SKIP

A reference is a ``pkcs11:`` URI (RFC 7512), ``handle:0x81...`` (a persistent TPM key), a
``TSS2 PRIVATE KEY`` PEM file (a TPM key) or any other key file; a file may also be given as
``env:NAME`` or ``fd:N`` (``hwsigner._safe.read_reference``). The hardware libraries are
imported only when a reference needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .._safe import read_reference
from ..errors import needs_extra
from .backend import Digest, KeyBackend, KeyOptions, PublicKey

if TYPE_CHECKING:
    from cryptography import x509

TSS2_PEM_MARKER = b"-----BEGIN TSS2 PRIVATE KEY-----"
TSS2_LEGACY_PEM_MARKER = b"-----BEGIN TSS2 KEY BLOB-----"  # openssl_tpm2_engine's first format


def key_kind(ref: str) -> Literal["pkcs11", "tpm", "file"]:
    """Which backend a reference belongs to: by its scheme, else by the file's content."""
    if ref.startswith("pkcs11:"):
        return "pkcs11"
    if ref.startswith("handle:"):
        return "tpm"
    try:
        head = read_reference(ref)
    except (OSError, ValueError):
        return "file"  # the file backend reports the missing file
    return "tpm" if TSS2_PEM_MARKER in head or TSS2_LEGACY_PEM_MARKER in head else "file"


def open_key(
    ref: str,
    options: KeyOptions | None = None,
    *,
    certificate_ref: str | x509.Certificate | None = None,
) -> KeyBackend:
    """Open the key that ``ref`` names. ``certificate_ref`` (a ``pkcs11:`` certificate URI, or
    the certificate a token key was issued for, as read from its file) lets a PKCS#11 key find
    its certificate, and pick the token key that holds the certificate's public key."""
    options = options or KeyOptions()
    kind = key_kind(ref)
    if kind == "pkcs11":
        with needs_extra("pkcs11"):
            from . import pkcs11
        return pkcs11.open_key(ref, options, certificate_ref=certificate_ref)
    if kind == "tpm":
        with needs_extra("tpm"):
            from . import tpm
        return tpm.open_key(ref, options)
    from . import file

    return file.FileKey.load(ref, options.pkcs8_password)


__all__ = ["Digest", "KeyBackend", "KeyOptions", "PublicKey", "key_kind", "open_key"]
