"""The agent: one user's credentials, kept fresh, answered on a Unix socket (an ssh-agent).

    >>> server = AgentServer.listen(keeper, default_socket(os.environ))  # doctest: +SKIP
    >>> server.serve_forever()                                          # doctest: +SKIP
    >>> ask_agent(default_socket(os.environ))                           # doctest: +SKIP
    '{"Version":1,"AccessKeyId":"ASIA...",...}'

The protocol is one answer per connection: the agent checks who connected (``SO_PEERCRED``: the
same user id as the agent, else ``refused`` and nothing else), writes the ``credential_process``
JSON from its keeper and one newline, and closes; ``error: TEXT`` instead when it holds no valid
credentials. The socket's directory is made 0700 and the socket 0600: the kernel keeps other
users out, and the peer check would refuse them if permissions were loosened.

The client half (``default_socket``, ``ask_agent``) is what ``credential-process --agent`` runs,
before argparse: it uses CPython's ``_socket`` directly (the ``socket`` module loads ``enum``
and ``selectors``, more than the rest of the client). The server half imports what it needs
when it runs.
"""

from __future__ import annotations

import _socket
import os
import sys

from ..errors import HwSignerError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    import socket
    import threading
    from collections.abc import Mapping

    from .keeper import CredentialKeeper

SOCKET_ENV = "HWSIGNER_AGENT_SOCKET"
MAX_ANSWER = 64 * 1024
CLIENT_TIMEOUT = 10.0


class AgentUnavailable(HwSignerError):
    """No agent answered (no socket, nobody listening, or a refusal); the text says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="start 'hwsigner agent', or add --agent-fallback")


def default_socket(env: Mapping[str, str]) -> str:
    """``$XDG_RUNTIME_DIR/hwsigner/agent.sock``, else under ``/tmp/hwsigner-UID``."""
    runtime = env.get("XDG_RUNTIME_DIR")
    base = runtime if runtime and os.path.isabs(runtime) else f"/tmp/hwsigner-{os.geteuid()}"  # noqa: S108
    return os.path.join(base, "hwsigner", "agent.sock")


def client_socket(path: str | None, env: Mapping[str, str]) -> str:
    """The socket ``credential-process --agent [PATH]`` asks: PATH, ``$HWSIGNER_AGENT_SOCKET``,
    else the default."""
    return path or env.get(SOCKET_ENV) or default_socket(env)


def peer_uid(conn: _socket.socket | socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket (``struct ucred``: pid,
    uid, gid, three native ints)."""
    ucred = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return int.from_bytes(ucred[4:8], sys.byteorder, signed=True)


def ask_agent(path: str, timeout: float = CLIENT_TIMEOUT) -> str:
    """The ``credential_process`` JSON the agent at ``path`` answers; AgentUnavailable if not."""
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.settimeout(timeout)
        conn.connect(path)
        if peer_uid(conn) != os.geteuid():
            raise AgentUnavailable(f"the agent socket {path} belongs to another user")
        answer = receive_all(conn)
    except OSError as exc:
        raise AgentUnavailable(f"no agent answers on {path}: {exc.strerror or exc}") from None
    finally:
        conn.close()
    text = answer.decode("ascii", errors="replace").strip()
    if text.startswith("{") and text.endswith("}") and "\n" not in text:
        return text
    from .._safe import one_line

    reason = one_line(text.removeprefix("error: ") or "no answer", 300)
    raise AgentUnavailable(f"the agent on {path} has no credentials: {reason}")


def receive_all(conn: _socket.socket) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size <= MAX_ANSWER:
        part = conn.recv(16384)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


class AgentServer:
    """A listening Unix socket that hands the keeper's credentials to this user's processes."""

    def __init__(self, keeper: CredentialKeeper, listener: socket.socket, path: str) -> None:
        self.keeper = keeper
        self.listener = listener
        self.path = path

    @classmethod
    def listen(cls, keeper: CredentialKeeper, path: str) -> AgentServer:
        """Bind ``path`` (0600, in a 0700 directory made if missing); a stale socket is
        replaced, a live agent's is not."""
        import socket

        from ..errors import ConfigError

        directory = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            if os.lstat(directory).st_uid != os.geteuid():
                raise ConfigError(
                    f"the directory of {path} belongs to another user",
                    hint="pass --socket with a path in a directory of your own",
                )
            if os.path.basename(directory) == "hwsigner":  # the default layout: ours alone
                os.chmod(directory, 0o700)
            remove_stale(path)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o177)
            try:
                listener.bind(path)
            finally:
                os.umask(old)
            os.chmod(path, 0o600)
            listener.listen(64)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {path}: {exc.strerror or exc}",
                hint="pass --socket with a path in a directory of your own",
            ) from None
        return cls(keeper, listener, path)

    def serve_until(self, stop: threading.Event) -> None:
        """Answer connections, each on its own thread, until ``stop`` is set; then remove the
        socket."""
        import contextlib
        import threading

        self.listener.settimeout(0.2)
        try:
            while not stop.is_set():
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=self.answer, args=(conn,), daemon=True).start()
        finally:
            self.listener.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def answer(self, conn: socket.socket) -> None:
        """One connection: check the peer, write the credentials (or why not), close."""
        import logging

        from ..errors import HwSignerError

        log = logging.getLogger("hwsigner")
        with conn:
            conn.settimeout(CLIENT_TIMEOUT)
            try:
                uid = peer_uid(conn)
                if uid != os.geteuid():
                    log.warning("agent: refused a process of user id %d", uid)
                    conn.sendall(b"refused\n")
                    return
                try:
                    text = self.keeper.get().to_process_json()
                except HwSignerError as exc:
                    text = f"error: {exc}"
                conn.sendall(text.encode() + b"\n")
            except OSError as exc:  # the client went away: nothing to answer
                log.debug("agent: client gone: %s", exc)


def remove_stale(path: str) -> None:
    """Remove a socket nobody listens on; refuse to replace a live agent or a non-socket."""
    import socket
    import stat

    from ..errors import ConfigError

    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ConfigError(f"{path} exists and is not a socket", hint="pass another --socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)
            return
    raise ConfigError(f"an agent already listens on {path}", hint="stop it, or pass --socket")


__all__ = ["AgentServer", "AgentUnavailable", "ask_agent", "client_socket", "default_socket"]
