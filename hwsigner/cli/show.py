"""What the tool, a key and a certificate are: ``version``, ``sign-string``, ``emulator check``,
``read-certificate-data``.

``sign-string`` signs the official helper's fixed test message with the key: ASCII ``AWS Roles
Anywhere Credential Helper Signing Test``, the version ``1``, then the raw SHA-256 of ``IAM RA``
followed by the public key (the uncompressed EC point, or the PKCS#1 ``RSAPublicKey`` DER), so a
signature can be checked against the certificate. An ML-DSA key signs the message without that
key-hash suffix, itself (pure ML-DSA, empty context; ``--digest`` does not apply), as AWS's
helper does for this key type. ``read-certificate-data`` prints what the SDKs
need to know of a certificate, or lists the certificates a ``pkcs11:`` URI matches.
"""

from __future__ import annotations

import argparse
import sys

from .parser import add_debug_flag, add_key_flags, key_options

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from datetime import datetime

    from ..emulator.model import Model, Profile, TrustAnchor
    from ..emulator.params import SessionRequest

FORMATS = ("json", "text", "bin")
REFUSED = 2  # the exit status of an emulator check the model refuses (1: a mistake)
DIGESTS = ("SHA256", "SHA384", "SHA512")


def add_version_arguments(parser: argparse.ArgumentParser) -> None:
    """No flags."""


def run_version(args: argparse.Namespace) -> int:
    from .. import __version__

    print(__version__)
    return 0


def add_sign_string_arguments(parser: argparse.ArgumentParser) -> None:
    add_key_flags(parser)
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="json",
        help="json (quoted hex, default), text (hex) or bin (raw bytes)",
    )
    parser.add_argument(
        "--digest",
        choices=DIGESTS,
        default="SHA256",
        type=str.upper,
        help="hash to sign with (default SHA256)",
    )


FIXED_MESSAGE = b"AWS Roles Anywhere Credential Helper Signing Test" + b"1"


def fixed_message(public_key: object) -> bytes:
    import hashlib

    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from ..x509certs import is_mldsa

    if is_mldsa(public_key):
        return FIXED_MESSAGE
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        raw = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    else:
        raw = public_key.public_bytes(Encoding.DER, PublicFormat.PKCS1)  # type: ignore[attr-defined]
    suffix = hashlib.sha256(b"IAM RA" + raw).digest()
    return FIXED_MESSAGE + suffix


def run_sign_string(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..identity import load_identity
    from ..keys import open_key

    if args.certificate:
        _, key = load_identity(args.certificate, args.private_key, None, key_options(args))
    elif args.private_key:
        key = open_key(args.private_key, key_options(args))
    else:
        raise ConfigError(
            "no private key given", hint="pass --private-key (or a pkcs11: --certificate)"
        )
    with key:
        signature = key.sign(fixed_message(key.public_key), args.digest)
    if args.format == "bin":
        sys.stdout.buffer.write(signature)
    elif args.format == "text":
        sys.stdout.write(signature.hex())
    else:
        sys.stdout.write(f'"{signature.hex()}"')
    return 0


def add_read_certificate_data_arguments(parser: argparse.ArgumentParser) -> None:
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
    from cryptography.hazmat.primitives.serialization import Encoding

    from ..x509certs import key_type

    assert isinstance(cert, x509.Certificate)
    kind = key_type(cert.public_key())
    algorithms = [kind] if kind.startswith("ML-DSA") else [f"{kind}SHA{n}" for n in (256, 384, 512)]
    return {
        "keyType": kind,
        "certificateData": base64.b64encode(cert.public_bytes(Encoding.DER)).decode(),
        "serialNumber": str(cert.serial_number),
        "supportedAlgorithms": algorithms,
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


def run_read_certificate_data(args: argparse.Namespace) -> int:
    import json

    from ..x509certs import read_certificates

    if args.certificate.startswith("pkcs11:"):
        sys.stdout.write(token_listing(args.certificate, args.pkcs11_lib))
        return 0
    cert = read_certificates(args.certificate, "--certificate")[0]
    sys.stdout.write(json.dumps(certificate_data(cert), separators=(",", ":")))
    return 0


def add_emulator_check_arguments(check: argparse.ArgumentParser) -> None:
    """``hwsigner emulator check``: would this certificate, with this model, get credentials for
    this role, and with which session tags? Exit 0 allowed, 2 refused, 1 a mistake."""
    check.description = (
        "Decide one CreateSession offline, as the emulator would, and show the session tags; "
        "exit 0 when allowed, 2 when refused."
    )
    check.add_argument("--config", required=True, metavar="FILE", help="the model file (JSON)")
    check.add_argument("--certificate", required=True, metavar="CERT", help="leaf (PEM or DER)")
    check.add_argument("--intermediates", metavar="FILE", help="the chain sent with the leaf")
    check.add_argument("--crl", action="append", metavar="FILE", help="as the emulator's --crl")
    for kind in ("trust-anchor", "profile", "role"):
        check.add_argument(
            f"--{kind}-arn", metavar="ARN", help="default: the model's only one (profile's role)"
        )
    check.add_argument("--duration-seconds", type=int, default=3600, metavar="N")
    check.add_argument("--role-session-name", metavar="NAME")
    check.add_argument("--instance-property", action="append", default=[], metavar="KEY=VALUE")
    check.add_argument("--now", metavar="TIME", help="the clock (default: now)")


def run_emulator_check(args: argparse.Namespace, now: datetime | None = None) -> int:
    """``hwsigner emulator check``: one CreateSession decided offline, on one screen."""
    from datetime import datetime, timezone

    from ..emulator.decide import check_offline
    from ..emulator.model import load_model
    from ..x509certs import read_certificates

    model = load_model(args.config, None, args.crl)
    leaf, *sent = read_certificates(args.certificate, "--certificate")
    if args.intermediates:
        sent += read_certificates(args.intermediates)
    session = offline_request(model, args)
    now = now or datetime.now(timezone.utc)
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
    from ..emulator.params import Rejection, SessionRequest, duration, role_session_name
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


__all__ = [
    "add_emulator_check_arguments", "add_read_certificate_data_arguments",
    "add_sign_string_arguments", "add_version_arguments", "certificate_data", "fixed_message",
    "offline_request", "only", "run_emulator_check", "run_read_certificate_data",
    "run_sign_string", "run_version", "token_listing",
]  # fmt: skip
