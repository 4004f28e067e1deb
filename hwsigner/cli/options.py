"""The flags the credential commands share with ``aws_signing_helper``, built from the one table
of settings (``hwsigner.settings.FIELDS``): a new setting there is a new flag here.

Only ``argparse`` is imported at the top: building the parser must stay cheap.
"""

from __future__ import annotations

import argparse
import os

from ..settings import FIELDS, Setting, key_options

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from ..transport import HttpTransport


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="explain each step on stderr")


def add_setting(parser: argparse.ArgumentParser, row: Setting, *, required: bool) -> None:
    """The flag of one setting."""
    if row.switch:
        parser.add_argument(row.flag, action="store_true", help=row.help)
        return
    parser.add_argument(
        row.flag,
        required=required,
        default=None if row.required else row.default,
        type=int if isinstance(row.default, int) else str,
        metavar=row.metavar,
        help=row.help,
    )


def add_key_flags(parser: argparse.ArgumentParser) -> None:
    """Where the certificate and key come from, and what opening them may need."""
    for row in FIELDS:
        if row.group == "certificate":
            add_setting(parser, row, required=False)
    add_private_key_flags(parser)


def add_private_key_flags(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--private-key`` and what opening it may need."""
    for row in FIELDS:
        if row.group == "key":
            add_setting(parser, row, required=required and row.name == "private_key")
    add_debug_flag(parser)


def add_session_flags(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Every flag of ``aws_signing_helper credential-process`` (``doctor``: none required)."""
    for row in FIELDS:
        if row.group == "session":
            add_setting(parser, row, required=required and row.required)
    parser.add_argument(
        "--with-proxy",
        action="store_true",
        help="accepted for compatibility: HTTPS_PROXY/NO_PROXY are always honoured",
    )
    add_key_flags(parser)


def transport(args: argparse.Namespace) -> HttpTransport:
    from ..transport import HttpTransport

    return HttpTransport.from_env(os.environ, verify=not args.no_verify_ssl)


__all__ = [
    "add_debug_flag",
    "add_key_flags",
    "add_private_key_flags",
    "add_session_flags",
    "key_options",
    "transport",
]
