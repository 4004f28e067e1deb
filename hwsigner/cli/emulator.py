"""``hwsigner emulator``: an offline IAM Roles Anywhere CreateSession endpoint on loopback."""

from __future__ import annotations

import argparse

from .options import add_debug_flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument(
        "--trust-anchor",
        action="append",
        required=True,
        metavar="CA.pem",
        help="a CA certificate to trust (repeat for several)",
    )
    parser.add_argument(
        "--crl",
        action="append",
        metavar="FILE",
        help="a CRL (PEM or DER): refuse the certificates it revokes (repeatable)",
    )
    parser.add_argument(
        "--now", metavar="TIME", help="fixed clock, e.g. 2024-07-06T11:39:10Z (to replay captures)"
    )
    add_debug_flag(parser)


def run(args: argparse.Namespace) -> int:
    from ..emulator.server import main

    return main(args)
