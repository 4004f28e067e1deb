"""``hwsigner sign-string``: sign the official helper's fixed test message with the key.

The message is ASCII ``AWS Roles Anywhere Credential Helper Signing Test``, the version ``1``,
then the raw SHA-256 of ``IAM RA`` followed by the public key (the uncompressed EC point, or the
PKCS#1 ``RSAPublicKey`` DER), so a signature can be checked against the certificate.
"""

from __future__ import annotations

import argparse
import sys

from .options import add_key_flags, key_options

FORMATS = ("json", "text", "bin")
DIGESTS = ("SHA256", "SHA384", "SHA512")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_key_flags(parser)
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="json",
        help="json (quoted hex, default), text (hex) or bin (raw bytes)",
    )
    parser.add_argument(
        "--digest",
        choices=DIGESTS,
        default="SHA256",
        type=str.upper,
        help="hash to sign with (default SHA256)",
    )


def fixed_message(public_key: object) -> bytes:
    import hashlib

    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if isinstance(public_key, ec.EllipticCurvePublicKey):
        raw = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    else:
        raw = public_key.public_bytes(Encoding.DER, PublicFormat.PKCS1)  # type: ignore[attr-defined]
    suffix = hashlib.sha256(b"IAM RA" + raw).digest()
    return b"AWS Roles Anywhere Credential Helper Signing Test" + b"1" + suffix


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..identity import load_identity
    from ..keys import open_key

    if args.certificate:
        _, key = load_identity(args.certificate, args.private_key, None, key_options(args))
    elif args.private_key:
        key = open_key(args.private_key, key_options(args))
    else:
        raise ConfigError(
            "no private key given", hint="pass --private-key (or a pkcs11: --certificate)"
        )
    with key:
        signature = key.sign(fixed_message(key.public_key), args.digest)
    if args.format == "bin":
        sys.stdout.buffer.write(signature)
    elif args.format == "text":
        sys.stdout.write(signature.hex())
    else:
        sys.stdout.write(f'"{signature.hex()}"')
    return 0
