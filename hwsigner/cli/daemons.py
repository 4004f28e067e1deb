"""The long-running commands ``update`` and ``emulator``, and how they (and ``serve``, in
``cli/serve.py``) all stop.

``update``: writes ``aws_access_key_id``, ``aws_secret_access_key`` and ``aws_session_token`` of
``--profile`` in ``$AWS_SHARED_CREDENTIALS_FILE`` (default ``~/.aws/credentials``), keeping every
other line, then again 5 minutes before each expiry. ``--once`` writes once and exits.

``emulator``: an offline IAM Roles Anywhere CreateSession endpoint on loopback; the URL is the
first line on stdout.

Each runs until SIGINT or SIGTERM (``stop_on_signals``), then ends cleanly with status 0.
"""

from __future__ import annotations

import argparse
import sys

from .parser import add_debug_flag, add_session_flags

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from datetime import datetime
    from typing import Protocol

    class Server(Protocol):
        """What ``socketserver`` servers have."""

        def serve_forever(self) -> None: ...
        def shutdown(self) -> None: ...
        def server_close(self) -> None: ...


def log_to_stderr() -> None:
    """Progress and warnings on stderr (``--debug`` has set up more already)."""
    import logging

    logging.basicConfig(stream=sys.stderr, format="hwsigner: %(message)s")
    logger = logging.getLogger("hwsigner")
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)


def stop_on_signals() -> threading.Event:
    """An event that SIGINT or SIGTERM sets, so the command can end cleanly with status 0."""
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    return stop


def serve_until_stopped(
    server: Server, stop: threading.Event, stopping: Callable[[], object] = lambda: None
) -> None:
    """Serve on a background thread until ``stop`` is set, then call ``stopping``, shut down and
    close."""
    import threading

    worker = threading.Thread(target=server.serve_forever, name="serve", daemon=True)
    worker.start()
    try:
        stop.wait()
    finally:
        stopping()
        server.shutdown()
        server.server_close()


def add_update_arguments(parser: argparse.ArgumentParser) -> None:
    add_session_flags(parser)
    parser.add_argument("--profile", default="default", help="profile to write (default: default)")
    parser.add_argument("--once", action="store_true", help="write the credentials once and exit")


def run_update(args: argparse.Namespace) -> int:
    import os
    from datetime import timedelta

    from ..delivery import UPDATE_REFRESH_MARGIN
    from ..delivery.credfile import credentials_path, keep_profile_fresh, write_and_log
    from ..delivery.keeper import CredentialKeeper
    from ..errors import ConfigError
    from ..session import Session
    from ..settings import Settings

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


def add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument(
        "--config", metavar="FILE", help="a model of trust anchors, profiles, roles and CRLs"
    )
    parser.add_argument(
        "--trust-anchor",
        action="append",
        metavar="CA.pem",
        help="short form: a CA certificate to trust, any ARNs (repeat for several)",
    )
    parser.add_argument(
        "--crl",
        action="append",
        metavar="FILE",
        help="a CRL (PEM or DER), for every trust anchor: refuse what it revokes (repeatable)",
    )
    parser.add_argument(
        "--now", metavar="TIME", help="fixed clock, e.g. 2024-07-06T11:39:10Z (to replay captures)"
    )
    add_debug_flag(parser)
    from .show import add_emulator_check_arguments

    commands = parser.add_subparsers(dest="emulator_command", metavar="check")
    add_emulator_check_arguments(commands.add_parser("check", help="decide one certificate"))


def run_emulator(args: argparse.Namespace) -> int:
    if args.emulator_command == "check":
        from .show import run_emulator_check

        return run_emulator_check(args, parse_now(args.now) if args.now else None)
    import logging

    from ..emulator.app import Emulator, utcnow
    from ..emulator.model import load_model
    from ..emulator.server import EmulatorServer

    model = load_model(args.config, args.trust_anchor, args.crl)
    clock = utcnow
    if args.now:
        fixed = parse_now(args.now)
        clock = lambda: fixed  # noqa: E731
    server = EmulatorServer.bind(Emulator(model, clock), args.port)
    stop = stop_on_signals()
    sys.stdout.write(server.url + "\n")
    sys.stdout.flush()
    logging.getLogger("hwsigner").debug(
        "trusting %d CA certificate(s); clock %s",
        len(model.anchors().certificates),
        f"fixed at {clock().isoformat()}" if args.now else "system UTC",
    )
    serve_until_stopped(server, stop)
    return 0


def parse_now(text: str) -> datetime:
    """``--now``: ISO 8601 (``2024-07-06T11:39:10Z``) or X-Amz-Date form; UTC when no zone."""
    import re
    from datetime import datetime, timezone

    from ..errors import ConfigError

    value = text.strip()
    try:
        if re.fullmatch(r"\d{8}T\d{6}Z", value):
            moment = datetime.strptime(value, "%Y%m%dT%H%M%SZ")
        else:
            moment = datetime.fromisoformat(value.removesuffix("Z").removesuffix("z"))
    except ValueError:
        raise ConfigError(
            f"--now {text!r} is not a time", hint="e.g. --now 2024-07-06T11:39:10Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


__all__ = [
    "add_emulator_arguments", "add_update_arguments", "log_to_stderr", "parse_now",
    "run_emulator", "run_update", "serve_until_stopped", "stop_on_signals",
]  # fmt: skip
