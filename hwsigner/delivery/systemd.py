"""systemd's two protocols, without libsystemd: socket activation and readiness notification.

    >>> inherited_sockets({})           # [] unless systemd handed sockets to this process
    []
    >>> notify("READY=1", {})           # False: no $NOTIFY_SOCKET names a socket
    False

- Socket activation (``sd_listen_fds``): systemd passes listening sockets as file descriptors
  3, 4, ... and sets ``LISTEN_PID`` to the receiving process and ``LISTEN_FDS`` to their count.
  They are taken only when ``LISTEN_PID`` is this process; the variables are then removed, so
  that children do not take them too.
- Notification (``sd_notify``): one datagram (``READY=1``, ``STOPPING=1``, ``STATUS=...``) to
  the Unix socket ``$NOTIFY_SOCKET`` names (a path, or ``@name`` in the abstract namespace).
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping

from ..errors import ConfigError

FIRST_FD = 3  # SD_LISTEN_FDS_START


def inherited_sockets(env: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """The listening stream sockets systemd handed over, in order; [] when there are none."""
    env = os.environ if env is None else env
    if env.get("LISTEN_PID") != str(os.getpid()):
        return []
    count = env.get("LISTEN_FDS", "0")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    if not count.isdigit():
        raise ConfigError(f"LISTEN_FDS={count!r} is not a number of file descriptors")
    sockets = []
    for fd in range(FIRST_FD, FIRST_FD + int(count)):
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise ConfigError(f"systemd's file descriptor {fd} is not a socket: {exc}") from None
        os.set_inheritable(fd, False)
        if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
            raise ConfigError(
                f"systemd's socket {fd} is not a TCP socket",
                hint="use ListenStream= with an address and port in the .socket unit",
            )
        sockets.append(sock)
    return sockets


def notify(state: str, env: MutableMapping[str, str] | None = None) -> bool:
    """Send ``state`` to the service manager; False when there is none (or it cannot be
    reached: readiness is information, never a reason to stop serving)."""
    env = os.environ if env is None else env
    path = env.get("NOTIFY_SOCKET", "")
    if not path or path[0] not in "/@":
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


__all__ = ["inherited_sockets", "notify"]
