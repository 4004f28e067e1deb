"""The argparse side of the ``hwsigner`` command: the parser, built for the named subcommand,
and the flags the credential commands share with ``aws_signing_helper``, built from the one
table of settings (``hwsigner.settings.FIELDS``): a new setting there is a new flag here.

    >>> from hwsigner.cli.parser import build_parser
    >>> build_parser(["version"]).parse_args(["version"]).command
    'version'

Kept apart from ``hwsigner.cli`` so that a cached ``credential-process`` can answer before
``argparse`` (and the ``re`` and ``gettext`` it imports) is loaded: see ``cache_hit``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..settings import FIELDS, Setting, key_options

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..transport import HttpTransport


# name, module under hwsigner.cli, one-line help
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("credential-process", "credentials", "print credentials for credential_process"),
    ("sign-string", "show", "sign the fixed test message with the key"),
    ("read-certificate-data", "show", "show what a certificate source holds"),
    ("emulator", "daemons", "run a local IAM Roles Anywhere CreateSession endpoint"),
    ("update", "daemons", "keep a profile of the AWS credentials file fresh"),
    ("serve", "serve", "serve credentials over IMDSv2 and container endpoints"),
    ("agent", "agent", "keep credentials for this user's processes on a Unix socket"),
    ("export-credentials", "credentials", "print credentials as shell variables"),
    ("keygen", "provision", "make a key pair inside a token, a TPM or a file"),
    ("csr", "provision", "make a certificate request signed by the key"),
    ("import-cert", "provision", "install an issued certificate beside its key"),
    ("renew", "renew", "get a new certificate for the same key and install it"),
    ("doctor", "provision", "check a setup before it ships, one line per check"),
    ("version", "show", "print the version"),
)


class Formatter(argparse.HelpFormatter):
    """argparse's help layout, sized without importing ``shutil`` (and the compression modules
    it imports): argparse makes a formatter for every ``add_argument``."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_terminal_width() - 2)


def _terminal_width() -> int:
    """``$COLUMNS``, else the width of the terminal on stdout, else 80 (as ``shutil`` does)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):  # no stdout, or not a terminal
        return 80


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake on one line with exit status 1."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"hwsigner: {message}; see '{self.prog} --help'\n")
        sys.exit(1)


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """The parser. When ``argv`` starts with a subcommand, only that one is built (start-up
    time: a cached ``credential-process`` runs on every ``aws`` command)."""
    parser = Parser(
        prog="hwsigner",
        description="AWS IAM Roles Anywhere credentials from keys in PKCS#11 tokens, TPMs, files.",
        formatter_class=Formatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    wanted = _command_in(argv)
    for name, module_name, summary in COMMANDS:
        if wanted not in (None, name):
            continue
        sub = commands.add_parser(
            name, help=summary, description=summary, formatter_class=Formatter
        )
        if wanted == name:
            module = importlib.import_module(f"hwsigner.cli.{module_name}")
            command = name.replace("-", "_")
            add = getattr(module, f"add_{command}_arguments", None) or module.add_arguments
            add(sub)
            sub.set_defaults(run=getattr(module, f"run_{command}", None) or module.run)
    return parser


def _command_in(argv: Sequence[str] | None) -> str | None:
    """The subcommand ``argv`` starts with, if it is a known one."""
    if argv and argv[0] in {name for name, _, _ in COMMANDS}:
        return argv[0]
    return None


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="explain each step on stderr")


def add_setting(parser: argparse.ArgumentParser, row: Setting) -> None:
    """The flag of one setting. Unset, it holds None (False, for an on/off flag): the
    environment and the defaults are filled in after parsing (``apply_sources``)."""
    if row.switch:
        parser.add_argument(row.flag, action="store_true", help=row.help)
        return
    parser.add_argument(
        row.flag,
        action="append" if row.repeat else "store",
        type=int if type(row.default) is int else str,
        metavar=row.metavar,
        help=row.help,
    )


# aws_signing_helper's certificate-store flags (Windows, macOS): the value each takes, if any
STORE_FLAGS = {
    "--cert-selector": 1,
    "--system-store-name": 1,
    "--use-latest-expiring-certificate": 0,
}


class StoreFlag(argparse.Action):
    """Recognised, and refused in one line: there is no certificate store here."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kw: object) -> None:
        option = args[-1] if args else "this flag"
        parser.error(
            f"{option}: certificate stores are not supported on this platform (they are "
            "Windows and macOS features); use a pkcs11: URI or a TPM key instead"
        )


def add_store_flags(parser: argparse.ArgumentParser) -> None:
    for flag, nargs in STORE_FLAGS.items():
        parser.add_argument(flag, nargs=nargs or 0, action=StoreFlag, help=argparse.SUPPRESS)


def add_key_flags(parser: argparse.ArgumentParser) -> None:
    """Where the certificate and key come from, and what opening them may need."""
    for row in FIELDS:
        if row.group == "certificate":
            add_setting(parser, row)
    add_private_key_flags(parser)


def add_private_key_flags(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--private-key`` and what opening it may need."""
    for row in FIELDS:
        if row.group == "key":
            add_setting(parser, row)
    parser.set_defaults(required_settings=("--private-key",) if required else ())
    add_debug_flag(parser)


def add_session_flags(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Every flag of ``aws_signing_helper credential-process`` (``doctor``: none required);
    each may also come from its ``HWSIGNER_*`` variable (``hwsigner.cli.sources``)."""
    for row in FIELDS:
        if row.group == "session":
            add_setting(parser, row)
    add_store_flags(parser)
    parser.add_argument(
        "--with-proxy",
        action="store_true",
        help="accepted for compatibility: HTTPS_PROXY/NO_PROXY are always honoured",
    )
    add_key_flags(parser)
    parser.set_defaults(
        settings_from_env=True,
        required_settings=tuple(row.flag for row in FIELDS if row.required) if required else (),
    )


def apply_sources(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    """Fill in the settings no flag set: from ``HWSIGNER_*`` variables (credential commands),
    then the defaults; then check the required ones. ``--debug`` logs where each came from."""
    from ..errors import ConfigError
    from .sources import ENVIRONMENT, describe, environment_values, missing, settle

    layers = []
    if getattr(args, "settings_from_env", False):
        try:
            layers.append((ENVIRONMENT, environment_values(env)))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    values = vars(args)
    sources = settle(values, layers)
    if not sources:
        return
    from .._log import debug

    debug("settings: %s", describe(sources))
    absent = [flag for flag in missing(values) if flag in getattr(args, "required_settings", ())]
    if absent:
        variables = ", ".join(f"HWSIGNER_{flag[2:].upper().replace('-', '_')}" for flag in absent)
        raise ConfigError(
            f"the following arguments are required: {', '.join(absent)}",
            hint=f"pass them, or set {variables}",
        )


def transport(args: argparse.Namespace) -> HttpTransport:
    from ..transport import HttpTransport

    return HttpTransport.from_env(os.environ, verify=not args.no_verify_ssl)


__all__ = [
    "COMMANDS",
    "Parser",
    "add_debug_flag",
    "add_key_flags",
    "add_private_key_flags",
    "add_session_flags",
    "add_store_flags",
    "apply_sources",
    "build_parser",
    "key_options",
    "transport",
]
