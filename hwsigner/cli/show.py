"""What the tool, a key and a certificate are: ``version``, ``sign-string``,
``read-certificate-data``.

``sign-string`` signs the official helper's fixed test message with the key: ASCII ``AWS Roles
Anywhere Credential Helper Signing Test``, the version ``1``, then the raw SHA-256 of ``IAM RA``
followed by the public key (the uncompressed EC point, or the PKCS#1 ``RSAPublicKey`` DER), so a
signature can be checked against the certificate. ``read-certificate-data`` prints what the SDKs
need to know of a certificate, or lists the certificates a ``pkcs11:`` URI matches.
"""

from __future__ import annotations

import argparse
import sys

from .parser import add_debug_flag, add_key_flags, key_options

FORMATS = ("json", "text", "bin")
DIGESTS = ("SHA256", "SHA384", "SHA512")


def add_version_arguments(parser: argparse.ArgumentParser) -> None:
    """No flags."""


def run_version(args: argparse.Namespace) -> int:
    from .. import __version__

    print(__version__)
    return 0


def add_sign_string_arguments(parser: argparse.ArgumentParser) -> None:
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


def run_sign_string(args: argparse.Namespace) -> int:
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


def add_read_certificate_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--certificate",
        required=True,
        metavar="CERT",
        help="certificate file (PEM or DER) or pkcs11: URI",
    )
    parser.add_argument(
        "--pkcs11-lib", metavar="PATH", help="PKCS#11 module (default: p11-kit-proxy)"
    )
    add_debug_flag(parser)


def certificate_data(cert: object) -> dict[str, object]:
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding

    assert isinstance(cert, x509.Certificate)
    key_type = "EC" if isinstance(cert.public_key(), ec.EllipticCurvePublicKey) else "RSA"
    return {
        "keyType": key_type,
        "certificateData": base64.b64encode(cert.public_bytes(Encoding.DER)).decode(),
        "serialNumber": str(cert.serial_number),
        "supportedAlgorithms": [f"{key_type}SHA{bits}" for bits in (256, 384, 512)],
    }


def token_listing(ref: str, pkcs11_lib: str | None) -> str:
    """The official helper's listing of the certificates a ``pkcs11:`` URI matches."""
    import hashlib

    from cryptography.hazmat.primitives.serialization import Encoding

    from ..errors import needs_extra

    with needs_extra("pkcs11"):
        from ..keys.pkcs11 import list_certificates
    found = list_certificates(ref, pkcs11_lib)
    if not found:
        return "No matching identities\n"
    lines = ["Matching identities"]
    for index, item in enumerate(found, 1):
        cert = item.certificate
        fingerprint = hashlib.sha1(cert.public_bytes(Encoding.DER)).hexdigest()  # noqa: S324
        lines += [
            f"{index}) Hex Fingerprint: {fingerprint}",
            f"Subject: {cert.subject.rfc4514_string()}",
            f"Issuer: {cert.issuer.rfc4514_string()}",
            f"Serial Number: {cert.serial_number:X}",
            f"URI: {item.uri}",
            "",
        ]
    return "\n".join(lines) + "\n"


def run_read_certificate_data(args: argparse.Namespace) -> int:
    import json

    from ..x509certs import read_certificates

    if args.certificate.startswith("pkcs11:"):
        sys.stdout.write(token_listing(args.certificate, args.pkcs11_lib))
        return 0
    cert = read_certificates(args.certificate, "--certificate")[0]
    sys.stdout.write(json.dumps(certificate_data(cert), separators=(",", ":")))
    return 0


__all__ = [
    "add_read_certificate_data_arguments", "add_sign_string_arguments", "add_version_arguments",
    "certificate_data", "fixed_message", "run_read_certificate_data", "run_sign_string",
    "run_version", "token_listing",
]  # fmt: skip
