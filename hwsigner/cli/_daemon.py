"""What the long-running commands (``serve``, ``update``, ``emulator``) share: log lines, and the
one way they stop: SIGINT or SIGTERM, then a clean exit with status 0."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Protocol


class Server(Protocol):
    """What ``socketserver`` servers have."""

    def serve_forever(self) -> None: ...
    def shutdown(self) -> None: ...
    def server_close(self) -> None: ...


def log_to_stderr() -> None:
    """Progress and warnings on stderr (``--debug`` has set up more already)."""
    logging.basicConfig(stream=sys.stderr, format="hwsigner: %(message)s")
    logger = logging.getLogger("hwsigner")
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)


def stop_on_signals() -> threading.Event:
    """An event that SIGINT or SIGTERM sets, so the command can end cleanly with status 0."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def serve_until_stopped(server: Server, stop: threading.Event) -> None:
    """Serve on a background thread until ``stop`` is set, then shut down and close."""
    worker = threading.Thread(target=server.serve_forever, name="serve", daemon=True)
    worker.start()
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
