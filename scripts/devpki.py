#!/usr/bin/env python3
"""Make a development PKI and leaf certificates Roles Anywhere accepts.

    python scripts/devpki.py init pki/                      # root CA + issuing CA (once)
    python scripts/devpki.py leaf pki/ device-0001 --type ec-p256   # software key + certificate
    python scripts/devpki.py issue pki/ device.pub.pem device-0001  # certificate for a public key
    python scripts/devpki.py issue pki/ request.csr device-0001     # ... or for a CSR's key
    python scripts/devpki.py revoke pki/ old.pem --out pki/issuing-ca.crl   # a CRL revoking it

Not for production: the CA keys are plain files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hwsigner.devpki import KEY_TYPES, DevPki, load_public_key
from hwsigner.errors import HwSignerError


def write_crl(pki: DevPki, args: argparse.Namespace) -> int:
    certificates = [x509.load_pem_x509_certificate(path.read_bytes()) for path in args.certificates]
    crl = pki.revoke(certificates, by_root=args.by_root)
    encoding = serialization.Encoding.DER if args.der else serialization.Encoding.PEM
    out = args.out or pki.directory / ("root-ca.crl" if args.by_root else "issuing-ca.crl")
    out.write_bytes(crl.public_bytes(encoding))
    print(out)
    return 0


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="create the root and issuing CAs")
    init.add_argument("directory", type=Path)
    leaf = commands.add_parser("leaf", help="a new software key and its certificate")
    leaf.add_argument("directory", type=Path)
    leaf.add_argument("name")
    leaf.add_argument("--type", choices=KEY_TYPES, default="ec-p256")
    leaf.add_argument("--by-root", action="store_true", help="issue from the root CA")
    issue = commands.add_parser("issue", help="a certificate for a public key or a CSR")
    issue.add_argument("directory", type=Path)
    issue.add_argument("public_key", type=Path, help="PEM public key or PEM CSR")
    issue.add_argument("name")
    issue.add_argument("--out", type=Path)
    issue.add_argument("--by-root", action="store_true", help="issue from the root CA")
    revoke = commands.add_parser("revoke", help="a CRL that revokes certificates")
    revoke.add_argument("directory", type=Path)
    revoke.add_argument("certificates", type=Path, nargs="+", help="PEM certificates to revoke")
    revoke.add_argument("--out", type=Path, help="CRL file (default: DIRECTORY/issuing-ca.crl)")
    revoke.add_argument("--der", action="store_true", help="write DER instead of PEM")
    revoke.add_argument("--by-root", action="store_true", help="a CRL of the root CA")
    args = parser.parse_args()

    if args.command == "init":  # keeps the CAs a directory already holds
        exists = (args.directory / "root-ca.pem").exists()
        pki = DevPki.load(args.directory) if exists else DevPki.create(args.directory)
        print(pki.root_cert)
        print(pki.issuing_cert)
        return 0
    pki = DevPki.load(args.directory)
    if args.command == "leaf":
        cert, key = pki.new_leaf(args.type, args.name, by_root=args.by_root)
        print(cert)
        print(key)
        return 0
    if args.command == "revoke":
        return write_crl(pki, args)
    public_key = load_public_key(args.public_key)
    print(pki.issue_file(public_key, args.name, args.out, by_root=args.by_root))
    return 0


def main() -> int:
    try:
        return run()
    except HwSignerError as exc:
        hint = f"; {exc.hint}" if exc.hint else ""
        print(f"devpki: {exc}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
