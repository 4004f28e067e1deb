"""``hwsigner serve``: credentials over HTTP for SDKs that expect EC2, a container or a pod.

    $ hwsigner serve --certificate ... --trust-anchor-arn ... --profile-arn ... --role-arn ...
    export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9911/
    $ hwsigner serve --config /etc/hwsigner/serve.ini --bind 127.0.0.1 --bind 10.0.0.5

One role from the flags, or the roles of ``--config`` (``serveconfig``), from one open key (one
PKCS#11 login, one TPM primary); each role keeps its own credentials fresh on its own thread.
Loopback listeners serve IMDSv2 (the first role), ``/credentials`` (the first role) and
``/role/NAME`` (each role, with its ``auth-token-file``), ``/healthz``, ``/readyz`` and
``/metrics``; any other address serves only the token routes and the health routes, and is
refused unless every role has a token. Sockets handed over by systemd (``LISTEN_FDS``) replace
``--bind``; ``READY=1`` is sent once every role holds credentials, ``STOPPING=1`` on the way
out. With ``--config`` or systemd's sockets a role whose first CreateSession fails is retried
with backoff while the others serve (``/readyz`` names it); otherwise that failure is one line
and exit 1, as before.
"""

from __future__ import annotations

import argparse
import sys

from .daemons import log_to_stderr, serve_until_stopped, stop_on_signals
from .parser import add_session_flags

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    import socket
    import threading
    from datetime import datetime

    from ..delivery.endpoints import ServedRole
    from ..session import Session
    from .serveconfig import RolePlan

DEFAULT_PORT = 9911
DEFAULT_HOP_LIMIT = 64


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    add_session_flags(parser, required=False)
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT,
        help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)",
    )  # fmt: skip
    parser.add_argument(
        "--bind", action="append", metavar="ADDR",
        help="IPv4 or IPv6 address to listen on (repeatable; default 127.0.0.1); other than "
        "loopback: container and health routes only, and every role needs a token",
    )  # fmt: skip
    parser.add_argument(
        "--hop-limit", type=int, default=DEFAULT_HOP_LIMIT,
        help=f"IP TTL of the answers, 1-255 (default {DEFAULT_HOP_LIMIT})",
    )  # fmt: skip
    parser.add_argument(
        "--auth-token-file", metavar="FILE",
        help="serve GET /credentials (the container endpoint) to clients whose "
        "Authorization header holds this file's token",
    )  # fmt: skip
    parser.add_argument(
        "--config", metavar="FILE",
        help="serve the roles of this INI file: [identity] and [role NAME] sections, "
        "keys named as the long flags without --",
    )  # fmt: skip


def run_serve(args: argparse.Namespace) -> int:
    from ..delivery.systemd import inherited_sockets
    from ..errors import ConfigError
    from .serveconfig import roles_from_args, roles_from_file

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port number", hint="use 0 to 65535")
    if not 1 <= args.hop_limit <= 255:
        raise ConfigError(f"--hop-limit {args.hop_limit} is out of range", hint="use 1 to 255")
    if args.config:
        refuse_flags_beside_config(args)
    roles = roles_from_file(args.config) if args.config else roles_from_args(args)
    inherited = inherited_sockets()
    listeners = [(s, is_loopback(s)) for s in inherited] or listen(args)
    try:
        if any(not loopback for _, loopback in listeners):
            unprotected = [role.name for role in roles if role.auth_token is None]
            if unprotected:
                raise ConfigError(
                    f"a non-loopback address needs a token for every role: none for"
                    f" {', '.join(unprotected)}",
                    hint="--auth-token-file FILE (or auth-token-file in each [role NAME])",
                )
        log_to_stderr()
        stop = stop_on_signals()
        serve_roles(args, roles, listeners, stop, tolerant=bool(args.config or inherited))
    finally:
        for sock, _ in listeners:
            sock.close()
    return 0


def serve_roles(
    args: argparse.Namespace,
    roles: list[RolePlan],
    listeners: list[tuple[socket.socket, bool]],
    stop: threading.Event,
    *,
    tolerant: bool,
) -> None:
    """Open the key once, start each role's keeper, serve until ``stop``."""
    import threading

    from ..delivery.endpoints import Endpoints, TokenStore
    from ..delivery.health import Health
    from ..delivery.httpd import HttpServer
    from ..delivery.keeper import keep_fresh
    from ..delivery.systemd import notify
    from ..session import Session

    with Session.open(roles[0].settings) as opened:
        sessions = [opened] + [opened.share(role.settings) for role in roles[1:]]
        served = [
            start_role(role, session, tolerant)
            for role, session in zip(roles, sessions, strict=True)
        ]
        health = Health([(r.name, r.keeper) for r in served], lambda: not_after(opened))
        tokens = TokenStore()
        routes = [(s, Endpoints(served, tokens, imds=lo, health=health)) for s, lo in listeners]
        server = HttpServer(list(routes), hop_limit=args.hop_limit)
        announce(args, served, listeners)
        ready = threading.Event()

        def changed() -> None:
            if not ready.is_set() and not health.not_ready():
                ready.set()
                notify("READY=1")

        for role in served:
            worker = threading.Thread(
                target=keep_fresh, args=(role.keeper, stop, changed), daemon=True
            )
            worker.start()
        changed()
        serve_until_stopped(server, stop, lambda: notify("STOPPING=1"))


def start_role(role: RolePlan, session: Session, tolerant: bool) -> ServedRole:
    """The role's keeper, with its first credentials; ``tolerant``: perhaps without them (the
    keeper logs why, and its thread retries), else a failure ends ``serve`` as it always did."""
    import contextlib
    import time

    from ..delivery.endpoints import ServedRole
    from ..delivery.keeper import CredentialKeeper
    from ..errors import HwSignerError

    if tolerant:
        keeper = CredentialKeeper(session.fetch, name=role.name)
        with contextlib.suppress(HwSignerError):
            keeper.get()
    else:
        started = time.perf_counter()
        keeper = CredentialKeeper(session.fetch, initial=session.fetch(), name=role.name)
        keeper.fetch_seconds = time.perf_counter() - started
        keeper.refreshes["success"] += 1
    return ServedRole(role.name, keeper, role.settings.role_arn, role.auth_token)


def listen(args: argparse.Namespace) -> list[tuple[socket.socket, bool]]:
    """A listening socket for each ``--bind`` (the first picks the port when ``--port 0``)."""
    import ipaddress

    from ..delivery.endpoints import listen_tcp
    from ..errors import ConfigError

    listeners: list[tuple[socket.socket, bool]] = []
    port = args.port
    try:
        for address in args.bind or ["127.0.0.1"]:
            try:
                ip = ipaddress.ip_address(address.strip("[]"))
            except ValueError:
                raise ConfigError(f"--bind {address!r} is not an IPv4 or IPv6 address") from None
            sock = listen_tcp(str(ip), port, args.hop_limit)
            listeners.append((sock, ip.is_loopback))
            port = sock.getsockname()[1]
    except BaseException:
        for sock, _ in listeners:
            sock.close()
        raise
    return listeners


def is_loopback(sock: socket.socket) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(sock.getsockname()[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announce(
    args: argparse.Namespace, served: list[ServedRole], listeners: list[tuple[socket.socket, bool]]
) -> None:
    """The ``export`` lines on stdout (loopback first), and one log line."""
    import logging

    loopback = [s for s, lo in listeners if lo]
    base = url_of((loopback or [listeners[0][0]])[0])
    lines = [f"export AWS_EC2_METADATA_SERVICE_ENDPOINT={base}/"] if loopback else []
    if served[0].auth_token is not None:
        lines.append(f"export AWS_CONTAINER_CREDENTIALS_FULL_URI={base}/credentials")
    if args.config:
        lines += [f"# role {r.name}: {base}/role/{r.name}" for r in served if r.auth_token]
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()
    logging.getLogger("hwsigner").info(
        "serving role%s %s on %s (hop limit %d)%s",
        "s" if len(served) > 1 else "",
        ", ".join(r.name for r in served),
        ", ".join(url_of(s) for s, _ in listeners),
        args.hop_limit,
        ", with the container endpoint" if served[0].auth_token is not None else "",
    )


def refuse_flags_beside_config(args: argparse.Namespace) -> None:
    from ..errors import ConfigError
    from ..settings import FIELDS

    given = [row.flag for row in FIELDS if getattr(args, row.name) not in (None, row.default)]
    if args.auth_token_file:
        given.append("--auth-token-file")
    if given:
        raise ConfigError(
            f"{given[0]} (a flag, or its HWSIGNER_ variable) cannot be combined with --config",
            hint=f"write it in the file ({given[0][2:]} = ...)",
        )


def not_after(session: Session) -> datetime:
    return session.current_identity().certificate.not_valid_after_utc


__all__ = ["add_serve_arguments", "run_serve"]
