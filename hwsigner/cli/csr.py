"""``hwsigner csr``: a PKCS#10 certificate request, signed inside the key's hardware.

    $ hwsigner csr --private-key 'pkcs11:token=dev;object=device' \\
        --subject "CN=device-0001,O=Acme" --san dns:device-0001.example.com --out device.csr

The request goes to the fleet's CA: AWS Private CA, a private CA, or AWS IoT's
CreateCertificateFromCsr (see docs/provisioning.md).
"""

from __future__ import annotations

import argparse
import sys

from .parser import add_private_key_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_private_key_flags(parser, required=True)
    parser.add_argument(
        "--subject", required=True, help='subject, e.g. "CN=device-0001,O=Acme" (RFC 4514)'
    )
    parser.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="TYPE:VALUE",
        help="subject alternative name: dns:NAME, uri:URI, ip:ADDRESS or email:ADDRESS "
        "(repeatable)",
    )
    parser.add_argument(
        "--out", metavar="FILE", help="write the PEM request here (default: stdout)"
    )


def run(args: argparse.Namespace) -> int:
    from ..keys import open_key
    from ..provision.csr import build_csr, parse_sans, parse_subject
    from ..provision.install import write_atomically
    from .parser import key_options

    subject = parse_subject(args.subject)
    sans = parse_sans(args.san)
    with open_key(args.private_key, key_options(args)) as key:
        pem = build_csr(key, subject, sans).pem
    if args.out:
        write_atomically(args.out, pem)
    else:
        sys.stdout.write(pem.decode())
    return 0
