"""Lines for the ``hwsigner`` logger, without importing ``logging`` to write them.

    >>> debug("cache: hit %s", "0123abcd")      # a no-op unless logging is loaded

``logging`` costs a one-shot ``credential-process`` about 6 ms of start-up (docs/performance.md),
and the lines written here are shown only when someone set logging up (``--debug`` and the
long-running commands do; a Python program that configures logging has imported it). So when
``logging`` is not loaded yet, nobody can be listening, and nothing is written.
"""

from __future__ import annotations

import sys

DEBUG, INFO, WARNING = 10, 20, 30  # logging's levels


def log(level: int, message: str, *args: object) -> None:
    """``logging.getLogger("hwsigner").log(level, message, *args)`` if ``logging`` is loaded."""
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger("hwsigner").log(level, message, *args)


def debug(message: str, *args: object) -> None:
    log(DEBUG, message, *args)


__all__ = ["DEBUG", "INFO", "WARNING", "debug", "log"]
