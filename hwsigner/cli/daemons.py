"""The long-running commands: ``serve``, ``update`` and ``emulator``, and how they all stop.

    $ hwsigner serve --certificate ... --trust-anchor-arn ... --profile-arn ... --role-arn ...
    export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9911/

``serve``: a local credentials endpoint for SDKs that expect EC2 or a container. With
``--auth-token-file`` it also serves the container form, and prints its line too:
``export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9911/credentials``. The key stays
open (one PKCS#11 login) the whole time.

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
    from datetime import datetime
    from typing import Protocol

    class Server(Protocol):
        """What ``socketserver`` servers have."""

        def serve_forever(self) -> None: ...
        def shutdown(self) -> None: ...
        def server_close(self) -> None: ...


DEFAULT_PORT = 9911
DEFAULT_HOP_LIMIT = 64


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


def serve_until_stopped(server: Server, stop: threading.Event) -> None:
    """Serve on a background thread until ``stop`` is set, then shut down and close."""
    import threading

    worker = threading.Thread(target=server.serve_forever, name="serve", daemon=True)
    worker.start()
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    add_session_flags(parser)
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--hop-limit",
        type=int,
        default=DEFAULT_HOP_LIMIT,
        help=f"IP TTL of the answers, 1-255 (default {DEFAULT_HOP_LIMIT})",
    )
    parser.add_argument(
        "--auth-token-file",
        metavar="FILE",
        help="serve GET /credentials (the container endpoint) to clients whose "
        "Authorization header holds this file's token",
    )


def run_serve(args: argparse.Namespace) -> int:
    import logging

    from ..delivery.endpoints import CredentialServer, read_auth_token
    from ..delivery.keeper import CredentialKeeper
    from ..errors import ConfigError
    from ..session import Session
    from ..settings import Settings

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port number", hint="use 0 to 65535")
    if not 1 <= args.hop_limit <= 255:
        raise ConfigError(f"--hop-limit {args.hop_limit} is out of range", hint="use 1 to 255")
    token = read_auth_token(args.auth_token_file) if args.auth_token_file else None
    settings = Settings.from_args(args)
    log_to_stderr()
    stop = stop_on_signals()
    with Session.open(settings) as session:
        keeper = CredentialKeeper(session.fetch, initial=session.fetch())
        server = CredentialServer.listen(
            keeper,
            settings.role_arn.rsplit("/", 1)[-1],
            port=args.port,
            hop_limit=args.hop_limit,
            auth_token=token,
            role_arn=settings.role_arn,
        )
        base = f"http://127.0.0.1:{server.port}"
        lines = [f"export AWS_EC2_METADATA_SERVICE_ENDPOINT={base}/"]
        if token is not None:
            lines.append(f"export AWS_CONTAINER_CREDENTIALS_FULL_URI={base}/credentials")
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()
        logging.getLogger("hwsigner").info(
            "serving role %s on %s (hop limit %d)%s",
            settings.role_arn.rsplit("/", 1)[-1],
            base,
            args.hop_limit,
            ", with the container endpoint" if token is not None else "",
        )
        serve_until_stopped(server, stop)
    return 0


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


def run_emulator(args: argparse.Namespace) -> int:
    import logging

    from ..emulator.app import Emulator, utcnow
    from ..emulator.certs import TrustAnchors
    from ..emulator.server import EmulatorServer

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
