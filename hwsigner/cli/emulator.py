"""``hwsigner emulator``: an offline IAM Roles Anywhere CreateSession endpoint on loopback.

Serves until SIGINT or SIGTERM (exit 0); the URL is the first line on stdout.
"""

from __future__ import annotations

import argparse
import sys

from .options import add_debug_flag

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from datetime import datetime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument(
        "--trust-anchor",
        action="append",
        required=True,
        metavar="CA.pem",
        help="a CA certificate to trust (repeat for several)",
    )
    parser.add_argument(
        "--now", metavar="TIME", help="fixed clock, e.g. 2024-07-06T11:39:10Z (to replay captures)"
    )
    add_debug_flag(parser)


def run(args: argparse.Namespace) -> int:
    import logging

    from ..emulator.app import Emulator, utcnow
    from ..emulator.certs import TrustAnchors
    from ..emulator.server import EmulatorServer
    from ._daemon import serve_until_stopped, stop_on_signals

    anchors = TrustAnchors.load(args.trust_anchor)
    clock = utcnow
    if args.now:
        fixed = parse_now(args.now)
        clock = lambda: fixed  # noqa: E731
    server = EmulatorServer.bind(Emulator(anchors, clock), args.port)
    stop = stop_on_signals()
    sys.stdout.write(server.url + "\n")
    sys.stdout.flush()
    logging.getLogger("hwsigner").debug(
        "trusting %d CA certificate(s); clock %s",
        len(anchors.certificates),
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
