"""``hwsigner import-cert``: install an issued certificate where the device will find it.

    $ hwsigner import-cert --certificate device.pem --chain issuing-ca.pem \\
        --private-key 'pkcs11:token=dev;object=device'
    pkcs11:token=dev;id=%01;object=device
    $ hwsigner import-cert --certificate device.pem --private-key device.tss2 --out cert.pem

For a ``pkcs11:`` key the certificate goes onto the token with the key's id and label; for TPM
and file keys it is checked against the key and written to ``--out``. stdout is what
``--certificate`` takes from now on. A certificate for another key changes nothing.
"""

from __future__ import annotations

import argparse
import sys

from .parser import add_private_key_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_private_key_flags(parser, required=True)
    add = parser.add_argument
    add("--certificate", required=True, metavar="PEM", help="the issued certificate")
    add("--chain", metavar="PEM", help="the CA certificates above it, to store with it")
    add("--out", metavar="FILE", help="also write the certificate and its chain to this file")
    add(
        "--replace",
        action="store_true",
        help="replace the key's existing certificate (renewal) or an existing --out file",
    )


def run(args: argparse.Namespace) -> int:
    from ..provision.install import import_certificate
    from ..x509certs import describe
    from .parser import key_options

    done = import_certificate(
        args.certificate,
        args.private_key,
        chain=args.chain,
        out=args.out,
        options=key_options(args),
        replace=args.replace,
    )
    cert = f"{describe(done.certificate)} (serial {done.certificate.serial_number:X})"
    if done.certificate_ref is None:
        sys.stderr.write(
            f"hwsigner: {cert} matches {done.key_description}; nothing written (no --out)\n"
        )
        return 0
    sys.stderr.write(f"hwsigner: installed {cert} for {done.key_description}\n")
    sys.stdout.write(done.certificate_ref + "\n")
    return 0
