"""``hwsigner read-certificate-data``: what the SDKs need to know of a certificate."""

from __future__ import annotations

import argparse
import sys

from .options import add_debug_flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
    import json

    from ..identity import read_certificates

    if args.certificate.startswith("pkcs11:"):
        sys.stdout.write(token_listing(args.certificate, args.pkcs11_lib))
        return 0
    cert = read_certificates(args.certificate, "--certificate")[0]
    sys.stdout.write(json.dumps(certificate_data(cert), separators=(",", ":")))
    return 0
