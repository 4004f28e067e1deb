"""``hwsigner update``: keep a profile of the shared credentials file fresh.

Writes ``aws_access_key_id``, ``aws_secret_access_key`` and ``aws_session_token`` of
``--profile`` in ``$AWS_SHARED_CREDENTIALS_FILE`` (default ``~/.aws/credentials``), keeping every
other line, then again 5 minutes before each expiry until SIGINT or SIGTERM. ``--once`` writes
once and exits.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import TYPE_CHECKING

from .options import add_session_flags, open_identity, session_params, transport

if TYPE_CHECKING:
    from ..credentials import Credentials

REFRESH_MARGIN = timedelta(minutes=5)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_session_flags(parser)
    parser.add_argument("--profile", default="default", help="profile to write (default: default)")
    parser.add_argument("--once", action="store_true", help="write the credentials once and exit")


def run(args: argparse.Namespace) -> int:
    import os

    from ..credfile import credentials_path
    from ..errors import ConfigError
    from ..refresher import CredentialKeeper
    from ..rolesanywhere import create_session
    from ..updater import keep_profile_fresh, write_and_log
    from ._daemon import log_to_stderr, stop_on_signals

    profile = args.profile.strip()
    if not profile or any(c in profile for c in "[]\r\n"):
        raise ConfigError(f"--profile {args.profile!r} is not a profile name")
    path = credentials_path(os.environ)
    params = session_params(args)
    log_to_stderr()
    stop = stop_on_signals()
    identity, key = open_identity(args)
    with key:  # one open key (one PKCS#11 login) for the whole run
        send = transport(args)

        def fetch() -> Credentials:
            return create_session(params, identity, key, transport=send)

        first = fetch()
        if args.once:
            write_and_log(path, profile, first)
            return 0
        keeper = CredentialKeeper(fetch, initial=first, refresh_margin=REFRESH_MARGIN)
        keep_profile_fresh(keeper, path, profile, stop)
    return 0
