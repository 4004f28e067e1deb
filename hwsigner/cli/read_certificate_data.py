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


def run(args: argparse.Namespace) -> int:
    import json

    from ..identity import read_certificates

    cert = read_certificates(args.certificate, "--certificate")[0]
    sys.stdout.write(json.dumps(certificate_data(cert), separators=(",", ":")))
    return 0
