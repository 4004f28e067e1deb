"""The ``hwsigner`` command: a drop-in for ``aws_signing_helper``, plus device tooling.

    $ hwsigner credential-process --certificate pkcs11:token=dev;object=ra \\
        --trust-anchor-arn ... --profile-arn ... --role-arn ...

Each subcommand is a module of this package with ``add_arguments(parser)`` and ``run(args)``.
The modules import only ``argparse`` at the top; what a command needs is imported when it runs.
Only this package prints, reads the terminal and chooses exit codes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# name, module under hwsigner.cli, one-line help
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("credential-process", "credential_process", "print credentials for credential_process"),
    ("sign-string", "sign_string", "sign the fixed test message with the key"),
    ("read-certificate-data", "read_certificate_data", "show what a certificate source holds"),
    ("emulator", "emulator", "run a local IAM Roles Anywhere CreateSession endpoint"),
    ("update", "update", "keep a profile of the AWS credentials file fresh"),
    ("serve", "serve", "serve credentials over local IMDSv2 and container endpoints"),
    ("export-credentials", "export_credentials", "print credentials as shell variables"),
    ("keygen", "keygen", "make a key pair inside a token, a TPM or a file"),
    ("csr", "csr", "make a certificate request signed by the key"),
    ("import-cert", "import_cert", "install an issued certificate beside its key"),
    ("doctor", "doctor", "check a setup before it ships, one line per check"),
    ("version", "version", "print the version"),
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
            module = importlib.import_module(f"{__name__}.{module_name}")
            module.add_arguments(sub)
            sub.set_defaults(run=module.run)
    return parser


def _command_in(argv: Sequence[str] | None) -> str | None:
    """The subcommand ``argv`` starts with, if it is a known one."""
    if argv and argv[0] in {name for name, _, _ in COMMANDS}:
        return argv[0]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 1
    debug = bool(getattr(args, "debug", False))
    if debug:
        import logging  # only now: it costs start-up time a cached credential-process lacks

        logging.basicConfig(stream=sys.stderr, format="hwsigner: debug: %(message)s")
        logging.getLogger("hwsigner").setLevel(logging.DEBUG)
    from ..errors import HwSignerError

    try:
        return int(args.run(args) or 0)
    except HwSignerError as exc:
        if debug:
            import logging

            logging.getLogger("hwsigner").debug("error detail", exc_info=True)
        hint = f"; {exc.hint}" if exc.hint else ""
        sys.stderr.write(f"hwsigner: {exc}{hint}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("hwsigner: interrupted\n")
        return 130
    except BrokenPipeError:
        return 1


def run() -> None:
    """The console-script entry point."""
    sys.exit(main())
