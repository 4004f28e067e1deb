"""``hwsigner keygen``: a new key pair made inside a token or a TPM (or, for development, a file).

    $ hwsigner keygen --private-key 'pkcs11:token=dev;object=device?pin-source=file:/run/pin'
    -----BEGIN PUBLIC KEY-----
    ...
    -----END PUBLIC KEY-----
    pkcs11:token=dev;id=%01;object=device?pin-source=file:/run/pin

stdout holds the public key (PEM) and, on the last line, the reference ``--private-key`` takes
from now on. An existing key, label, handle or file is never replaced.
"""

from __future__ import annotations

import argparse
import sys

from .parser import add_debug_flag

ALGORITHMS = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "ml-dsa-44", "ml-dsa-65", "ml-dsa-87")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--private-key",
        required=True,
        metavar="REF",
        help="where to make it: pkcs11:...;object=LABEL, handle:0x81..., or a file path",
    )
    add(
        "--algorithm",
        choices=ALGORITHMS,
        default="ec-p256",
        help="key type (default ec-p256; ml-dsa-*: files only)",
    )
    add("--tpm", action="store_true", help="the path is a TSS2 key file to make in the TPM")
    add("--tpm-key-password", metavar="PASSWORD", help="password for the new TPM key")
    add("--tpm-tcti", metavar="TCTI", help="TPM connection (default: $TPM2TOOLS_TCTI or device)")
    add("--pkcs11-lib", metavar="PATH", help="PKCS#11 module (default: p11-kit-proxy)")
    add_debug_flag(parser)


def run(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from ..keys import KeyOptions
    from ..provision.keygen import generate_key

    options = KeyOptions(
        pkcs11_lib=args.pkcs11_lib, tpm_key_password=args.tpm_key_password, tpm_tcti=args.tpm_tcti
    )
    made = generate_key(args.private_key, args.algorithm, tpm=args.tpm, options=options)
    pem = made.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    sys.stderr.write(f"hwsigner: created {made.description}\n")
    sys.stdout.write(pem.decode() + made.reference + "\n")
    return 0
