"""``hwsigner serve``: a local credentials endpoint for SDKs that expect EC2 or a container.

    $ hwsigner serve --certificate ... --trust-anchor-arn ... --profile-arn ... --role-arn ...
    export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9911/

With ``--auth-token-file`` it also serves the container form, and prints its line too:
``export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9911/credentials``. Runs until
SIGINT or SIGTERM; the key stays open (one PKCS#11 login) the whole time.
"""

from __future__ import annotations

import argparse
import sys

from .options import add_session_flags

DEFAULT_PORT = 9911
DEFAULT_HOP_LIMIT = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace) -> int:
    import logging

    from ..delivery.endpoints import CredentialServer, read_auth_token
    from ..delivery.keeper import CredentialKeeper
    from ..errors import ConfigError
    from ..session import Session
    from ..settings import Settings
    from ._daemon import log_to_stderr, serve_until_stopped, stop_on_signals

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
            server.role_name,
            base,
            args.hop_limit,
            ", with the container endpoint" if token is not None else "",
        )
        serve_until_stopped(server, stop)
    return 0
