"""Where a token's user PIN comes from, in order: the URI, the environment, the terminal.

    >>> from hwsigner.keys.pkcs11_pin import pin_without_asking
    >>> from hwsigner.keys.pkcs11_uri import Pkcs11Uri
    >>> pin_without_asking(Pkcs11Uri.parse("pkcs11:token=dev?pin-value=1234"), {})
    '1234'

``pin-value`` is used as given; ``pin-source=file:PATH`` (or an absolute path) reads the first
line of a file; ``pin-source=|/absolute/command args`` runs a command (no shell) and reads its
stdout; then ``HWSIGNER_PKCS11_PIN``; then a prompt on ``/dev/tty`` — never stdin. Errors name
the source, never the PIN.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping

from .._safe import read_user_file
from .._tty import ask_secret
from ..errors import ConfigError
from .pkcs11_uri import Pkcs11Uri

ENV_PIN = "HWSIGNER_PKCS11_PIN"
INSTEAD = f"pin-value or pin-source in the URI, or the {ENV_PIN} environment variable"
COMMAND_TIMEOUT = 120  # seconds; a command may wait for its user (a pinentry, a vault unlock)


def pin_without_asking(uri: Pkcs11Uri, environ: Mapping[str, str]) -> str | None:
    """The PIN from the URI or the environment, or None when only a prompt could give it."""
    if uri.pin_value is not None:
        return uri.pin_value
    if uri.pin_source is not None:
        return pin_from_source(uri.pin_source)
    return environ.get(ENV_PIN) or None


def ask_pin(what: str) -> str:
    """Ask on the terminal, e.g. ``ask_pin("PIN for token 'dev'")``."""
    return ask_secret(f"{what}: ", instead=INSTEAD)


def pin_from_source(source: str) -> str:
    """Read a ``pin-source``: ``file:PATH``, an absolute path, or ``|/absolute/command``."""
    if source.startswith("|"):
        return _pin_from_command(source[1:])
    path = source
    if path.startswith("file://"):
        path = path[len("file://") :]
    elif path.startswith("file:"):
        path = path[len("file:") :]
    if not path.startswith("/"):
        raise ConfigError(
            f"unsupported pin-source {source!r}",
            hint="use pin-source=file:/absolute/path or pin-source=|/absolute/command",
        )
    try:
        line = read_user_file(path, "PIN", "pin-source", 4096).decode("utf-8").split("\n")[0]
    except UnicodeDecodeError:
        raise ConfigError(f"the PIN file {path} is not UTF-8 text", hint=None) from None
    return _non_empty(line.rstrip("\r\n"), f"the PIN file {path}")


def _pin_from_command(command: str) -> str:
    try:
        argv = shlex.split(command)
    except ValueError:
        argv = []
    if not argv or not argv[0].startswith("/"):
        raise ConfigError(
            "pin-source=| needs an absolute command path",
            hint="e.g. pin-source=|/usr/local/bin/get-pin (URI-encode spaces as %20)",
        )
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot run the PIN command {argv[0]}: {exc.strerror}",
            hint="check the pin-source command path",
        ) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"the PIN command {argv[0]} did not finish in {COMMAND_TIMEOUT} s", hint=None
        ) from None
    if done.returncode != 0:
        raise ConfigError(
            f"the PIN command {argv[0]} failed with exit status {done.returncode}",
            hint="run it by hand to see why",
        )
    try:
        text = done.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"the PIN command {argv[0]} printed no UTF-8 text") from None
    return _non_empty(text.splitlines()[0] if text else "", f"the PIN command {argv[0]}")


def _non_empty(pin: str, source: str) -> str:
    if not pin:
        raise ConfigError(f"{source} gave an empty PIN", hint="put the PIN on its first line")
    return pin
