"""The provisioning commands of a factory line: ``keygen``, ``csr``, ``import-cert``, ``doctor``.

    $ hwsigner keygen --private-key 'pkcs11:token=dev;object=device?pin-source=file:/run/pin'
    -----BEGIN PUBLIC KEY-----
    ...
    -----END PUBLIC KEY-----
    pkcs11:token=dev;id=%01;object=device?pin-source=file:/run/pin
    $ hwsigner csr --private-key 'pkcs11:token=dev;object=device' \\
        --subject "CN=device-0001,O=Acme" --san dns:device-0001.example.com --out device.csr
    $ hwsigner import-cert --certificate device.pem --chain issuing-ca.pem \\
        --private-key 'pkcs11:token=dev;object=device'
    pkcs11:token=dev;id=%01;object=device
    $ hwsigner doctor --certificate 'pkcs11:token=dev;object=device' \\
        --trust-anchor-arn ... --profile-arn ... --role-arn ... --trust-anchor-cert root-ca.pem
    PASS  certificate: CN=device-0001, serial 1F..., issued by CN=Acme issuing CA, on the token
    ...
    doctor: 8 passed, 0 warnings, 0 failed

- ``keygen``: a new key pair made inside a token or a TPM (or, for development, a file). stdout
  holds the public key (PEM) and, on the last line, the reference ``--private-key`` takes from
  now on. An existing key, label, handle or file is never replaced.
- ``csr``: a PKCS#10 request signed inside the key's hardware, for the fleet's CA: AWS Private
  CA, a private CA, or AWS IoT's CreateCertificateFromCsr (see docs/provisioning.md).
- ``import-cert``: for a ``pkcs11:`` key the certificate goes onto the token with the key's id
  and label; for TPM and file keys it is checked against the key and written to ``--out``.
  stdout is what ``--certificate`` takes from now on. A certificate for another key changes
  nothing.
- ``doctor``: the flags of ``credential-process`` (the ARNs optional), plus
  ``--trust-anchor-cert`` to check the chain up to the trust anchor and ``--online`` to call
  CreateSession for real. Exit status 0 only when nothing failed (warnings are fine).

The work itself is in ``hwsigner.provision``; this module parses, prints and picks exit codes.
"""

from __future__ import annotations

import argparse
import sys

from .parser import add_debug_flag, add_private_key_flags, add_session_flags

ALGORITHMS = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "ml-dsa-44", "ml-dsa-65", "ml-dsa-87")


def add_keygen_arguments(parser: argparse.ArgumentParser) -> None:
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


def run_keygen(args: argparse.Namespace) -> int:
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


def add_csr_arguments(parser: argparse.ArgumentParser) -> None:
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


def run_csr(args: argparse.Namespace) -> int:
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


def add_import_cert_arguments(parser: argparse.ArgumentParser) -> None:
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


def run_import_cert(args: argparse.Namespace) -> int:
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


def add_doctor_arguments(parser: argparse.ArgumentParser) -> None:
    add_session_flags(parser, required=False)
    add = parser.add_argument
    add("--trust-anchor-cert", metavar="PEM",
        help="the trust anchor's CA certificate(s), to check the chain reaches it")  # fmt: skip
    add("--online", action="store_true", help="call CreateSession for real")


def run_doctor(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from ..provision.doctor import Setup, run_checks
    from ..settings import key_options
    from .parser import transport

    setup = Setup(
        certificate=args.certificate,
        private_key=args.private_key,
        intermediates=args.intermediates,
        options=key_options(args),
        trust_anchor_arn=args.trust_anchor_arn,
        profile_arn=args.profile_arn,
        role_arn=args.role_arn,
        session_duration=args.session_duration,
        role_session_name=args.role_session_name,
        region=args.region,
        endpoint=args.endpoint,
        trust_anchors=args.trust_anchor_cert,
        online=args.online,
    )
    counts = {"pass": 0, "warn": 0, "fail": 0, "skip": 0}
    for check in run_checks(setup, datetime.now(timezone.utc), transport=transport(args)):
        counts[check.status] += 1
        sys.stdout.write(check.line() + "\n")
        sys.stdout.flush()
    warnings = f"{counts['warn']} warning" + ("" if counts["warn"] == 1 else "s")
    sys.stdout.write(f"doctor: {counts['pass']} passed, {warnings}, {counts['fail']} failed\n")
    return 1 if counts["fail"] else 0


__all__ = [
    "add_csr_arguments", "add_doctor_arguments", "add_import_cert_arguments",
    "add_keygen_arguments", "run_csr", "run_doctor", "run_import_cert", "run_keygen",
]  # fmt: skip
