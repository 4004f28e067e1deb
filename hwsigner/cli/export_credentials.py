"""``hwsigner export-credentials``: credentials as shell variables, after ``aws configure
export-credentials``, for ``eval "$(hwsigner export-credentials --format env ...)"``.

Formats: ``process`` (the credential_process JSON, the default), ``env`` (``export NAME=value``),
``env-no-export``, ``powershell`` (``$Env:NAME="value"``), ``windows-cmd`` (``set NAME=value``)
and ``fish`` (``set -gx NAME "value"``). The variables are ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` and ``AWS_CREDENTIAL_EXPIRATION``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .credential_process import add_cache_flags, credentials
from .options import add_session_flags

if TYPE_CHECKING:
    from ..credentials import Credentials

LINE_FORMATS = {
    "env": "export {name}={value}",
    "env-no-export": "{name}={value}",
    "powershell": '$Env:{name}="{value}"',
    "windows-cmd": "set {name}={value}",
    "fish": 'set -gx {name} "{value}"',
}
FORMATS = ("process", *LINE_FORMATS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_session_flags(parser)
    add_cache_flags(parser)
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="process",
        help="process (JSON, default), env, env-no-export, powershell, windows-cmd or fish",
    )


def render(found: Credentials, output_format: str) -> str:
    if output_format == "process":
        return found.to_process_json() + "\n"
    from ..credentials import format_time

    line = LINE_FORMATS[output_format]
    variables = (
        ("AWS_ACCESS_KEY_ID", found.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", found.secret_access_key),
        ("AWS_SESSION_TOKEN", found.session_token),
        ("AWS_CREDENTIAL_EXPIRATION", format_time(found.expiration)),
    )
    for name, value in variables:
        if not _plain(value):
            from ..errors import ServiceError

            raise ServiceError(
                "InvalidResponse",
                f"{name} holds characters unsafe in a shell",
                status=200,
                hint="check --endpoint",
            )
    return "".join(line.format(name=name, value=value) + "\n" for name, value in variables)


def _plain(value: str) -> bool:
    """Characters AWS credentials are made of, none of which a shell would interpret."""
    return all((c.isascii() and c.isalnum()) or c in "+/=-_.:" for c in value)


def run(args: argparse.Namespace) -> int:
    text = render(credentials(args), args.format)
    sys.stdout.write(text)
    return 0
