"""``hwsigner update``: keep a profile of the shared credentials file fresh.

Writes ``aws_access_key_id``, ``aws_secret_access_key`` and ``aws_session_token`` of
``--profile`` in ``$AWS_SHARED_CREDENTIALS_FILE`` (default ``~/.aws/credentials``), keeping every
other line, then again 5 minutes before each expiry until SIGINT or SIGTERM. ``--once`` writes
once and exits.
"""

from __future__ import annotations

import argparse

from .options import add_session_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_session_flags(parser)
    parser.add_argument("--profile", default="default", help="profile to write (default: default)")
    parser.add_argument("--once", action="store_true", help="write the credentials once and exit")


def run(args: argparse.Namespace) -> int:
    import os
    from datetime import timedelta

    from ..delivery import UPDATE_REFRESH_MARGIN
    from ..delivery.credfile import credentials_path, keep_profile_fresh, write_and_log
    from ..delivery.keeper import CredentialKeeper
    from ..errors import ConfigError
    from ..session import Session
    from ..settings import Settings
    from ._daemon import log_to_stderr, stop_on_signals

    profile = args.profile.strip()
    if not profile or any(c in profile for c in "[]\r\n"):
        raise ConfigError(f"--profile {args.profile!r} is not a profile name")
    path = credentials_path(os.environ)
    settings = Settings.from_args(args)
    log_to_stderr()
    stop = stop_on_signals()
    with Session.open(settings) as session:  # one open key (one PKCS#11 login) for the run
        first = session.fetch()
        if args.once:
            write_and_log(path, profile, first)
            return 0
        margin = timedelta(seconds=UPDATE_REFRESH_MARGIN)
        keeper = CredentialKeeper(session.fetch, initial=first, refresh_margin=margin)
        keep_profile_fresh(keeper, path, profile, stop)
    return 0
