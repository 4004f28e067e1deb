"""``hwsigner emulator``: an offline IAM Roles Anywhere CreateSession endpoint on loopback, and
``hwsigner emulator check``: would this certificate get credentials for this role, offline?"""

from __future__ import annotations

import argparse
import sys

from .options import add_debug_flag

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from ..emulator.model import Model, Profile, TrustAnchor
    from ..emulator.params import SessionRequest

REFUSED = 2  # the exit status of a check the model refuses (1: a mistake in the inputs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (0: any free)")
    add_model_flags(parser)
    parser.add_argument(
        "--now", metavar="TIME", help="fixed clock, e.g. 2024-07-06T11:39:10Z (to replay captures)"
    )
    add_debug_flag(parser)
    commands = parser.add_subparsers(
        dest="emulator_command", metavar="check", parser_class=type(parser)
    )
    check = commands.add_parser(
        "check",
        help="would this certificate, with this model, get credentials for this role?",
        description="Decide one CreateSession offline, as the emulator would, and show the "
        "session tags; exit 0 when allowed, 2 when refused.",
    )
    check.add_argument("--config", required=True, metavar="FILE", help="the model file (JSON)")
    check.add_argument("--certificate", required=True, metavar="CERT", help="leaf (PEM or DER)")
    check.add_argument("--intermediates", metavar="FILE", help="the chain sent with the leaf")
    for kind in ("trust-anchor", "profile", "role"):
        check.add_argument(
            f"--{kind}-arn", metavar="ARN", help="default: the model's only one (profile's role)"
        )
    check.add_argument("--duration-seconds", type=int, default=3600, metavar="N")
    check.add_argument("--role-session-name", metavar="NAME")
    check.add_argument("--instance-property", action="append", default=[], metavar="KEY=VALUE")
    check.add_argument("--now", metavar="TIME", help="the clock (default: now)")


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="a model of trust anchors, profiles, roles and CRLs"
    )
    parser.add_argument(
        "--trust-anchor",
        action="append",
        metavar="CA.pem",
        help="short form: a CA certificate to trust, any ARNs (repeat for several)",
    )


def run(args: argparse.Namespace) -> int:
    if args.emulator_command == "check":
        return run_check(args)
    from ..emulator.server import main

    return main(args)


def run_check(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from ..emulator.decide import check_offline
    from ..emulator.model import Model
    from ..emulator.server import parse_now
    from ..x509certs import read_certificates

    model = Model.load(args.config)
    leaf, *sent = read_certificates(args.certificate, "--certificate")
    if args.intermediates:
        sent += read_certificates(args.intermediates)
    session = offline_request(model, args)
    now = parse_now(args.now) if args.now else datetime.now(timezone.utc)
    decision = check_offline(model, leaf, tuple(sent), session, now)
    out = sys.stdout.write
    if decision.refusal is None:
        out(f"ALLOWED: {session.role_arn} for {decision.duration} s\n")
    else:
        refusal = decision.refusal
        out(f"REFUSED: {refusal.status} {refusal.error_type}: {refusal.detail}\n")
        out(f"reason:           {refusal.reason}\n")
    record = decision.record(leaf)
    out(f"certificate:      {record['subject']} (serial {record['serialNumber']})\n")
    out(f"trust anchor:     {session.trust_anchor_arn}\n")
    out(f"profile:          {session.profile_arn}\n")
    asked = f"asked {args.duration_seconds}"
    granted = f"{decision.duration} s ({asked})" if decision.allowed else f"none ({asked})"
    out(f"duration:         {granted}\n")
    out(f"sourceIdentity:   {decision.source_identity or '(none: no CN)'}\n")
    out(f"roleSessionName:  {record['roleSessionName']}\n")
    profile = model.profile(session.profile_arn)
    rules = "default" if profile is None or profile.default_mapping else "the profile's"
    out(f"principal tags ({rules} mapping rules):\n")
    for key, value in decision.tags:
        out(f"  aws:PrincipalTag/{key} = {value}\n")
    return 0 if decision.allowed else REFUSED


def offline_request(model: Model, args: argparse.Namespace) -> SessionRequest:
    """The CreateSession the check decides: ARNs from the flags or the model's only ones."""
    from ..arns import parse_arn
    from ..emulator.params import SessionRequest, duration, role_session_name
    from ..emulator.rejection import Rejection
    from ..errors import ConfigError

    anchor = args.trust_anchor_arn or only(model.trust_anchors, "trust-anchor")
    profile = args.profile_arn or only(model.profiles, "profile")
    found = model.profile(profile)
    role = args.role_arn or (found.role_arns[0] if found and len(found.role_arns) == 1 else "")
    if not role:
        raise ConfigError("which role?", hint="give --role-arn")
    properties = tuple(item.partition("=")[::2] for item in args.instance_property)
    if any(not key for key, _ in properties):
        raise ConfigError("--instance-property takes KEY=VALUE", hint="e.g. site=lab-3")
    try:
        return SessionRequest(
            anchor,
            profile,
            role,
            parse_arn(anchor, "trust-anchor"),
            parse_arn(profile, "profile"),
            parse_arn(role, "role"),
            duration(args.duration_seconds),
            role_session_name(args.role_session_name),
            tuple(sorted(properties)),
        )
    except Rejection as exc:
        raise ConfigError(exc.detail, hint="see hwsigner emulator check --help") from None


def only(items: tuple[TrustAnchor, ...] | tuple[Profile, ...], kind: str) -> str:
    from ..errors import ConfigError

    arns = [item.arn for item in items]
    if len(arns) != 1:
        raise ConfigError(f"the model has {len(arns)} {kind}s", hint=f"give --{kind}-arn")
    return str(arns[0])
