"""``hwsigner doctor``: check a device's setup before it ships, one line per check.

    $ hwsigner doctor --certificate 'pkcs11:token=dev;object=device' \\
        --trust-anchor-arn ... --profile-arn ... --role-arn ... --trust-anchor-cert root-ca.pem
    PASS  certificate: CN=device-0001, serial 1F..., issued by CN=Acme issuing CA, on the token
    PASS  private key: opens: pkcs11:token=dev;id=%01;object=device;type=private
    ...
    doctor: 8 passed, 0 warnings, 0 failed

Takes the flags of ``credential-process`` (the ARNs are optional here), plus
``--trust-anchor-cert`` to check the chain up to the trust anchor and ``--online`` to call
CreateSession for real. Exit status 0 only when nothing failed (warnings are fine).
"""

from __future__ import annotations

import argparse
import sys

from .parser import add_session_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_session_flags(parser, required=False)
    add = parser.add_argument
    add("--trust-anchor-cert", metavar="PEM",
        help="the trust anchor's CA certificate(s), to check the chain reaches it")  # fmt: skip
    add("--online", action="store_true", help="call CreateSession for real")


def run(args: argparse.Namespace) -> int:
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
