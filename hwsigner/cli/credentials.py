"""The one-shot credential commands: ``credential-process`` and ``export-credentials``.

``credential-process``: one CreateSession, printed as ``credential_process`` JSON. With
``--cache`` the answer is kept on disk and reused while more than min(15 minutes, half its
lifetime) remain; when a refresh fails, an entry with more than a minute left is handed out
with a warning. A
cache hit loads no key backend and not ``cryptography``: it reads the flags, hashes them and the
certificate file, and prints the stored credentials. ``hwsigner.cli`` first tries
``cache_hit``, which does this without argparse; this module is the full path.

``export-credentials``: the same credentials as shell variables, after ``aws configure
export-credentials``, for ``eval "$(hwsigner export-credentials --format env ...)"``. Formats:
``process`` (the credential_process JSON, the default), ``env`` (``export NAME=value``),
``env-no-export``, ``powershell`` (``$Env:NAME="value"``), ``windows-cmd`` (``set NAME=value``)
and ``fish`` (``set -gx NAME "value"``). The variables are ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` and ``AWS_CREDENTIAL_EXPIRATION``.
"""

from __future__ import annotations

import argparse
import os
import sys

from .cache_hit import cache_inputs
from .parser import add_session_flags

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
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


def add_credential_process_arguments(parser: argparse.ArgumentParser) -> None:
    from .agent import add_agent_flags

    add_session_flags(parser)
    add_cache_flags(parser)
    add_agent_flags(parser)


def add_cache_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache",
        action="store_true",
        help="reuse credentials while over min(15 minutes, half their lifetime) remain",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="cache directory (default: $XDG_CACHE_HOME/hwsigner or ~/.cache/hwsigner)",
    )


def run_credential_process(args: argparse.Namespace) -> int:
    sys.stdout.write(process_json(args))
    return 0


def process_json(args: argparse.Namespace) -> str:
    """The ``credential_process`` JSON: fresh, or with ``--cache`` cached while still good."""
    if not getattr(args, "cache", False):
        return fresh_credentials(args).to_process_json()
    from ..delivery.cache import CredentialCache, cache_key
    from ..errors import HwSignerError

    cache = CredentialCache.at(args.cache_dir, os.environ)
    key = cache_key(*cache_inputs(vars(args), os.environ))
    found = cache.get(key)
    if found is not None:
        return found
    with cache.lock(key):  # parallel misses wait here, then find the first one's answer
        found = cache.get(key)
        if found is not None:
            return found
        try:
            answer = fresh_credentials(args)
        except HwSignerError as exc:
            stale = cache.get(key, stale=True)
            if stale is None:
                raise
            sys.stderr.write(stale_warning(exc, stale))
            return stale
        try:
            cache.put(key, answer)
        except HwSignerError as exc:  # the credentials are good: hand them out all the same
            sys.stderr.write(f"hwsigner: warning: not cached: {exc}\n")
    return answer.to_process_json()


def stale_warning(error: BaseException, answer: str) -> str:
    """The stderr line for cached credentials handed out because a refresh failed."""
    from . import error_line

    until = answer.rpartition('"Expiration":"')[2].partition('"')[0]
    reason = error_line(error).removeprefix("hwsigner: ")
    return f"hwsigner: warning: {reason}; using cached credentials valid until {until}\n"


def credentials(args: argparse.Namespace) -> Credentials:
    """Like ``process_json``, as a ``Credentials`` value."""
    if not getattr(args, "cache", False):
        return fresh_credentials(args)
    from ..credentials import Credentials

    return Credentials.from_process_json(process_json(args))


def fresh_credentials(args: argparse.Namespace) -> Credentials:
    from ..session import Session
    from ..settings import Settings

    with Session.open(Settings.from_args(args)) as session:
        return session.fetch()


def add_export_credentials_arguments(parser: argparse.ArgumentParser) -> None:
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


def run_export_credentials(args: argparse.Namespace) -> int:
    text = render(credentials(args), args.format)
    sys.stdout.write(text)
    return 0


__all__ = [
    "add_cache_flags", "add_credential_process_arguments", "add_export_credentials_arguments",
    "credentials", "fresh_credentials", "process_json", "render", "run_credential_process",
    "run_export_credentials",
]  # fmt: skip
