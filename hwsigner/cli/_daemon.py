"""What the long-running commands (``serve``, ``update``) share: log lines and a clean stop."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType


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
