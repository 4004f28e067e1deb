"""``hwsigner agent``: open the key once, keep credentials fresh, answer on a Unix socket.

    $ hwsigner agent --certificate 'pkcs11:token=dev;object=ra' --trust-anchor-arn ... \\
        --profile-arn ... --role-arn ...
    export HWSIGNER_AGENT_SOCKET=/run/user/1000/hwsigner/agent.sock

and then, in ``~/.aws/config``: ``credential_process = hwsigner credential-process --agent``.
The agent runs in the foreground (for a systemd user unit) until SIGINT or SIGTERM; the PIN, if
the token asks for one, is typed once when it starts. ``--daemon`` goes to the background once
the first credentials are held (the PIN prompt stays on the terminal until then) and prints the
``export`` lines (the socket, and ``HWSIGNER_AGENT_PID``) for
``eval "$(hwsigner agent --daemon ...)"``.

``credential-process --agent [PATH]`` is answered by ``hwsigner.cli.cache_hit.agent_answer`` before
argparse is loaded; ``--agent-fallback`` lets the full command sign directly when no agent
answers, which is why ``credential-process`` also knows these two flags (``add_agent_flags``).
"""

from __future__ import annotations

import argparse
import os
import sys

from .parser import add_session_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_session_flags(parser)
    parser.add_argument(
        "--socket",
        metavar="PATH",
        help="where to listen (default: $XDG_RUNTIME_DIR/hwsigner/agent.sock)",
    )
    parser.add_argument(
        "--daemon",
        action="store_true",
        help="go to the background once the first credentials are held; print the export line",
    )


def add_agent_flags(parser: argparse.ArgumentParser) -> None:
    """``credential-process``'s agent flags (answered before argparse; see the module)."""
    parser.add_argument(
        "--agent",
        nargs="?",
        const="",
        metavar="PATH",
        help="print the credentials of the running agent (default socket: "
        "$HWSIGNER_AGENT_SOCKET, else $XDG_RUNTIME_DIR/hwsigner/agent.sock)",
    )
    parser.add_argument(
        "--agent-fallback",
        action="store_true",
        help="with --agent: sign directly when no agent answers",
    )


def run(args: argparse.Namespace) -> int:
    from ..delivery.agent import default_socket

    path = os.path.abspath(args.socket or default_socket(os.environ))
    ready = daemonize() if args.daemon else None
    return serve(args, path, ready)


def serve(args: argparse.Namespace, path: str, ready: int | None) -> int:
    import logging
    from datetime import timedelta

    from ..delivery import CACHE_REUSE_MARGIN
    from ..delivery.agent import AgentServer
    from ..delivery.keeper import CredentialKeeper
    from ..session import Session
    from ..settings import Settings
    from .daemons import log_to_stderr, stop_on_signals

    settings = Settings.from_args(args)
    log_to_stderr()
    stop = stop_on_signals()
    with Session.open(settings) as session:  # the one PIN prompt, if any
        # its clients are credential_process clients: refresh before botocore's 15 minutes
        margin = timedelta(seconds=CACHE_REUSE_MARGIN)
        keeper = CredentialKeeper(session.fetch, initial=session.fetch(), refresh_margin=margin)
        server = AgentServer.listen(keeper, path)
        line = f"export HWSIGNER_AGENT_SOCKET={path}\n"
        if ready is not None:
            detach()
            os.write(ready, f"{line}export HWSIGNER_AGENT_PID={os.getpid()}\n".encode())
            os.close(ready)  # the waiting parent prints the lines and exits
        else:
            sys.stdout.write(line)
            sys.stdout.flush()
        logging.getLogger("hwsigner").info("agent for %s listening on %s", settings.role_arn, path)
        server.serve_until(stop)
    return 0


def daemonize() -> int:
    """Fork; the parent waits for the child's ``export`` line (or its failure) and exits with
    it. The child keeps the terminal until it has credentials (a PIN prompt needs it); it
    returns the pipe to write that line to."""
    read_end, write_end = os.pipe()
    if os.fork() > 0:
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            line = pipe.read()
        if not line:
            sys.exit(1)  # the child reported why on stderr
        sys.stdout.write(line.decode())
        sys.exit(0)
    os.close(read_end)
    return write_end


def detach() -> None:
    """Leave the terminal and the caller's session: new session, stdio on /dev/null."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


__all__ = ["add_agent_flags", "add_arguments", "run"]
