"""The flags the credential commands share with ``aws_signing_helper``, and what they build.

Only ``argparse`` is imported at the top: building the parser must stay cheap.
"""

from __future__ import annotations

import argparse
import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from ..identity import Identity
    from ..keys import KeyBackend, KeyOptions
    from ..rolesanywhere import SessionParams
    from ..transport import HttpTransport


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="explain each step on stderr")


def add_key_flags(parser: argparse.ArgumentParser) -> None:
    """Where the certificate and key come from, and what opening them may need."""
    parser.add_argument(
        "--certificate",
        metavar="CERT",
        help="certificate: PEM/DER file, PKCS#12 file, or pkcs11: URI",
    )
    add_private_key_flags(parser)


def add_private_key_flags(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--private-key`` and what opening it may need."""
    add = parser.add_argument
    add(
        "--private-key",
        required=required,
        metavar="KEY",
        help="private key: key file, TSS2 PEM, pkcs11: URI, or handle:0x81...",
    )
    add("--pkcs11-lib", metavar="PATH", help="PKCS#11 module (default: p11-kit-proxy)")
    add(
        "--reuse-pin",
        action="store_true",
        help="use the user PIN for keys that need a login per signature",
    )
    add("--tpm-key-password", metavar="PASSWORD", help="password of the TPM key")
    add("--no-tpm-key-password", action="store_true", help="the TPM key has no password")
    add("--tpm-tcti", metavar="TCTI", help="TPM connection (default: $TPM2TOOLS_TCTI or device)")
    add(
        "--pkcs8-password",
        metavar="PASSWORD",
        help="password of an encrypted PKCS#8 key or PKCS#12 file",
    )
    add_debug_flag(parser)


def add_session_flags(parser: argparse.ArgumentParser) -> None:
    """Every flag of ``aws_signing_helper credential-process``."""
    add = parser.add_argument
    add("--intermediates", metavar="PEM", help="intermediate CA certificates (PEM bundle)")
    add("--trust-anchor-arn", required=True, metavar="ARN", help="trust anchor ARN")
    add("--profile-arn", required=True, metavar="ARN", help="profile ARN")
    add("--role-arn", required=True, metavar="ARN", help="role to assume")
    add(
        "--session-duration",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="session duration, 900 to 43200 (default 3600)",
    )
    add("--role-session-name", metavar="NAME", help="role session name")
    add("--region", help="signing region (default: the trust anchor's)")
    add("--endpoint", metavar="URL", help="CreateSession endpoint (default: by region)")
    add("--no-verify-ssl", action="store_true", help="do not verify the endpoint's TLS")
    add(
        "--with-proxy",
        action="store_true",
        help="accepted for compatibility: HTTPS_PROXY/NO_PROXY are always honoured",
    )
    add_key_flags(parser)


def key_options(args: argparse.Namespace) -> KeyOptions:
    from ..keys import KeyOptions

    if args.tpm_key_password is not None and args.no_tpm_key_password:
        from ..errors import ConfigError

        raise ConfigError("--tpm-key-password and --no-tpm-key-password contradict each other")
    return KeyOptions(
        pkcs11_lib=args.pkcs11_lib,
        reuse_pin=args.reuse_pin,
        pkcs8_password=args.pkcs8_password,
        tpm_key_password=args.tpm_key_password,
        no_tpm_key_password=args.no_tpm_key_password,
        tpm_tcti=args.tpm_tcti,
    )


def session_params(args: argparse.Namespace) -> SessionParams:
    from ..rolesanywhere import SessionParams, resolve

    params = SessionParams(
        trust_anchor_arn=args.trust_anchor_arn,
        profile_arn=args.profile_arn,
        role_arn=args.role_arn,
        session_duration=args.session_duration,
        role_session_name=args.role_session_name,
        region=args.region,
        endpoint=args.endpoint,
    )
    resolve(params)  # ARN, region and duration mistakes surface before any key is opened
    return params


def open_identity(args: argparse.Namespace) -> tuple[Identity, KeyBackend]:
    from ..identity import load_identity

    return load_identity(
        args.certificate,
        args.private_key,
        getattr(args, "intermediates", None),
        key_options(args),
    )


def transport(args: argparse.Namespace) -> HttpTransport:
    from ..transport import HttpTransport

    return HttpTransport.from_env(os.environ, verify=not args.no_verify_ssl)
