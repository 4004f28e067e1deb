"""The argparse side of the ``hwsigner`` command: the parser, built for the named subcommand.

    >>> from hwsigner.cli.parser import build_parser
    >>> args = build_parser(["version"]).parse_args(["version"])       # doctest: +SKIP

Kept apart from ``hwsigner.cli`` so that a cached ``credential-process`` can answer before
``argparse`` (and the ``re`` and ``gettext`` it imports) is loaded: see ``cache_hit``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import COMMANDS

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Sequence


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
