"""``hwsigner credential-process``: one CreateSession, printed as ``credential_process`` JSON."""

from __future__ import annotations

import argparse
import sys

from .options import add_session_flags, open_identity, session_params, transport


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_session_flags(parser)


def run(args: argparse.Namespace) -> int:
    from ..rolesanywhere import create_session

    params = session_params(args)
    identity, key = open_identity(args)
    with key:
        credentials = create_session(params, identity, key, transport=transport(args))
    sys.stdout.write(credentials.to_process_json())
    return 0
