"""``hwsigner renew``: a new certificate for the same key, installed where the old one is.

    $ hwsigner renew --certificate device.pem --private-key device.tss2 \\
        --exec 'openssl x509 -req -CA ca.pem -CAkey ca.key -days 90 -copy_extensions copy' \\
        --if-expiring-within 30
    renewed: serial 4242, notAfter 2027-03-01T12:00:00Z
    $ hwsigner renew --certificate 'pkcs11:token=dev;object=ra' \\
        --private-key 'pkcs11:token=dev;object=ra' --pca-arn arn:aws:acm-pca:... \\
        --trust-anchor-arn ... --profile-arn ... --role-arn ... --verify

stdout is one line: ``renewed: serial S, notAfter T`` or ``not due: expires in N days``.
Any failure is one line on stderr, exit status 1, and the old certificate untouched.
"""

from __future__ import annotations

import argparse
import sys

from .parser import add_session_flags

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime

    from cryptography import x509

    from ..credentials import Credentials
    from ..identity import Identity
    from ..keys import KeyBackend
    from ..provision.renew import Issued
    from ..settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_session_flags(parser, required=False)  # the Roles Anywhere flags are optional here
    add = parser.add_argument
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--exec",
        dest="exec_command",
        metavar="COMMAND",
        help="a CA command run by /bin/sh: the request (PEM) on stdin, the certificate on stdout",
    )
    source.add_argument("--pca-arn", metavar="ARN", help="issue with this AWS Private CA")
    add("--pca-template-arn", metavar="ARN", help="Private CA template (default: the CA's)")
    add(
        "--validity-days",
        type=int,
        metavar="N",
        help="validity to ask for (Private CA default: the current certificate's; --exec "
        "gets it as $HWSIGNER_VALIDITY_DAYS)",
    )
    add(
        "--if-expiring-within",
        type=int,
        metavar="DAYS",
        help="renew only when the certificate expires within DAYS days (else exit 0)",
    )
    add("--subject", help="subject of the request (default: the current certificate's)")
    add(
        "--verify",
        action="store_true",
        help="install only if the new certificate gets credentials from the endpoint",
    )


def run(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from ..identity import load_identity
    from ..settings import key_options

    check_flags(args)
    session = roles_anywhere(args)
    now = datetime.now(timezone.utc)
    days = file_not_due(args, now)
    if days is not None:
        return not_due(days)
    identity, key = load_identity(
        args.certificate, args.private_key, args.intermediates, key_options(args)
    )
    with key:
        days = days_to_spare(args, identity.certificate, now)
        if days is not None:
            return not_due(days)
        issued = renewed(args, identity, key, session, now)
    install(args, issued)
    leaf = issued.certificate
    stamp = leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    sys.stdout.write(f"renewed: serial {leaf.serial_number}, notAfter {stamp}\n")
    return 0


def file_not_due(args: argparse.Namespace, now: datetime) -> int | None:
    """For a certificate file: refuse what cannot be rewritten, and decide --if-expiring-within
    before the key is opened (no PIN asked, no TPM touched on the days nothing is due)."""
    from ..identity import read_certificate_file
    from ..provision.renew import check_replaceable

    if args.certificate.startswith("pkcs11:"):
        return None
    check_replaceable(args.certificate)
    if args.if_expiring_within is None:
        return None
    return days_to_spare(args, read_certificate_file(args.certificate).certificate, now)


def check_flags(args: argparse.Namespace) -> None:
    from ..errors import ConfigError

    if not args.certificate:
        raise ConfigError("renew needs --certificate", hint="the certificate to renew")
    if args.validity_days is not None and args.validity_days < 1:
        raise ConfigError(f"--validity-days {args.validity_days} must be 1 or more")
    if args.if_expiring_within is not None and args.if_expiring_within < 0:
        raise ConfigError(f"--if-expiring-within {args.if_expiring_within} must be 0 or more")
    if args.certificate.startswith("pkcs11:") and not (args.private_key or "pkcs11:").startswith(
        "pkcs11:"
    ):
        raise ConfigError(
            "a pkcs11: certificate is renewed on its token, beside a pkcs11: key",
            hint="give --private-key the key's pkcs11: URI (or leave it out)",
        )
    if args.pca_template_arn and not args.pca_arn:
        raise ConfigError("--pca-template-arn goes with --pca-arn")
    if args.pca_arn:
        from ..provision.renew_ca import pca_region

        pca_region(args.pca_arn)


def roles_anywhere(args: argparse.Namespace) -> Settings | None:
    """The device's own session, when the three ARNs are given (--verify needs them)."""
    from ..errors import ConfigError
    from ..rolesanywhere import resolve
    from ..settings import Settings

    given = [args.trust_anchor_arn, args.profile_arn, args.role_arn]
    if not any(given):
        if args.verify:
            raise ConfigError(
                "--verify needs --trust-anchor-arn, --profile-arn and --role-arn",
                hint="they say where the new certificate must get credentials",
            )
        return None
    if not all(given):
        raise ConfigError(
            "give all of --trust-anchor-arn, --profile-arn and --role-arn, or none",
        )
    settings = Settings.from_args(args)
    resolve(settings)  # ARN, region and duration mistakes surface before any key is opened
    return settings


def days_to_spare(args: argparse.Namespace, cert: x509.Certificate, now: datetime) -> int | None:
    """The days ``cert`` has left when --if-expiring-within says it is not due yet, else None."""
    from ..provision.renew import is_due, whole_days_left

    if args.if_expiring_within is None or is_due(cert, now, args.if_expiring_within):
        return None
    return whole_days_left(cert, now)


def not_due(days: int) -> int:
    sys.stdout.write(f"not due: expires in {days} days\n")
    return 0


def renewed(
    args: argparse.Namespace,
    identity: Identity,
    key: KeyBackend,
    session: Settings | None,
    now: datetime,
) -> Issued:
    """Request, issue, check and (with --verify) prove the new certificate; install nothing."""
    from ..provision.csr import parse_subject
    from ..provision.renew import check_issued, read_issued, renewal_request

    subject = parse_subject(args.subject) if args.subject else None
    request = renewal_request(identity.certificate, key, subject).pem
    if args.exec_command:
        from ..provision.renew_ca import issue_with_command

        answer = issue_with_command(args.exec_command, request, args.validity_days)
        issued = read_issued(answer, "the --exec command")
    else:
        from ..provision.renew_ca import issue_with_pca

        answer = issue_with_pca(
            args.pca_arn,
            request,
            validity_days=args.validity_days or lifetime_days(identity),
            template_arn=args.pca_template_arn,
            credentials=own_credentials(args, session, identity, key),
        )
        issued = read_issued(answer, "AWS Private CA")
    check_issued(issued, key.public_key, now)
    if args.verify and session is not None:
        prove(args, session, identity, issued, key)
    return issued


def lifetime_days(identity: Identity) -> int:
    cert = identity.certificate
    return max(1, (cert.not_valid_after_utc - cert.not_valid_before_utc).days)


def own_credentials(
    args: argparse.Namespace, session: Settings | None, identity: Identity, key: KeyBackend
) -> Credentials | None:
    """The device's own Roles Anywhere session (None: botocore's default chain)."""
    if session is None:
        return None
    from ..rolesanywhere import request_credentials
    from .parser import transport

    return request_credentials(session, identity, key, transport=transport(args))


def prove(
    args: argparse.Namespace,
    session: Settings,
    identity: Identity,
    issued: Issued,
    key: KeyBackend,
) -> None:
    """CreateSession with the new certificate and the same key, before anything is replaced."""
    from ..errors import CertificateError, HwSignerError
    from ..identity import Identity
    from ..rolesanywhere import request_credentials
    from ..x509rules import chain_to_send
    from .parser import transport

    leaf = issued.certificate
    chain = issued.intermediates or identity.chain
    try:
        new = Identity(leaf, chain_to_send(leaf, chain))
        request_credentials(session, new, key, transport=transport(args))
    except HwSignerError as exc:
        raise CertificateError(
            f"the new certificate (serial {leaf.serial_number}) did not get credentials: "
            f"{exc}; nothing was replaced",
            hint=exc.hint,
        ) from exc


def install(args: argparse.Namespace, issued: Issued) -> None:
    """Where the old certificate is: on the token beside the key, or in its file."""
    if not args.certificate.startswith("pkcs11:"):
        from ..provision.renew import install_file

        install_file(args.certificate, issued)
        return
    from ..errors import needs_extra

    with needs_extra("pkcs11"):
        from ..keys import pkcs11

    key_ref = args.private_key or args.certificate
    pkcs11.install_certificate(
        key_ref, issued.certificate, issued.chain, args.pkcs11_lib, replace=True
    )


__all__ = [
    "add_arguments", "check_flags", "days_to_spare", "file_not_due", "install", "lifetime_days",
    "not_due", "own_credentials", "prove", "renewed", "roles_anywhere", "run",
]  # fmt: skip
