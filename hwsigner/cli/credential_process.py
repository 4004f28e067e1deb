"""``hwsigner credential-process``: one CreateSession, printed as ``credential_process`` JSON.

With ``--cache`` the answer is kept on disk and reused while more than 5 minutes of it remain.
A cache hit loads no key backend and not ``cryptography``: it reads the flags, hashes them and
the certificate file, and prints the stored credentials. ``hwsigner.cli`` first tries
``cache_hit``, which does this without argparse; this module is the full path.
"""

from __future__ import annotations

import argparse
import os
import sys

from .cache_hit import cache_inputs
from .options import add_session_flags

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from ..credentials import Credentials


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_session_flags(parser)
    add_cache_flags(parser)


def add_cache_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache", action="store_true", help="reuse credentials that still have over 5 minutes left"
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="cache directory (default: $XDG_CACHE_HOME/hwsigner or ~/.cache/hwsigner)",
    )


def run(args: argparse.Namespace) -> int:
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
        answer = fresh_credentials(args)
        try:
            cache.put(key, answer)
        except HwSignerError as exc:  # the credentials are good: hand them out all the same
            sys.stderr.write(f"hwsigner: warning: not cached: {exc}\n")
    return answer.to_process_json()


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
