"""``credential-process --cache`` answered from the cache before argparse is loaded.

    >>> import tempfile
    >>> from datetime import datetime, timezone
    >>> from hwsigner.credentials import Credentials
    >>> from hwsigner.delivery.cache import CredentialCache, cache_key
    >>> ra = "arn:aws:rolesanywhere:us-east-1:111122223333:"
    >>> args = ["--cache", "--cache-dir", tempfile.mkdtemp(), "--certificate", "leaf.pem",
    ...         "--trust-anchor-arn", ra + "trust-anchor/t", "--profile-arn", ra + "profile/p",
    ...         "--role-arn", "arn:aws:iam::111122223333:role/r"]
    >>> cached_answer(args, {}) is None         # a miss: the full command runs and fills it
    True
    >>> values, expiry = read_flags(args), datetime(2030, 1, 1, tzinfo=timezone.utc)
    >>> CredentialCache.at(values["cache_dir"], {}).put(cache_key(*cache_inputs(values, {})),
    ...     Credentials("ASIAEXAMPLE0000000", "secret", "token", expiry))
    >>> cached_answer(args, {})[:47]
    '{"Version":1,"AccessKeyId":"ASIAEXAMPLE0000000"'

The AWS CLI runs ``credential_process`` before every command, so a cache hit should cost little
more than starting Python. Importing ``argparse``, ``json`` or ``re`` would each add more than
half of a bare interpreter's start-up (docs/performance.md), so this module reads the flags
itself, as argparse would, and looks the answer up. On anything it is not sure of (a flag it
does not know, an abbreviation, ``--help``, ``--debug``, a missing or malformed value) and on a
miss it returns None: the full command then runs, argparse reports mistakes and a miss fetches,
as if this module were not there. ``cache_inputs`` is shared with that full path, so both find
the same entry.
"""

from __future__ import annotations

from ..errors import HwSignerError
from ..settings import FIELDS
from .sources import ENVIRONMENT, environment_values, missing, settle

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# The flags of credential-process by argparse destination: the settings' (parser.py builds
# them from the same table), and those of the command itself.
VALUE_FLAGS = {row.flag: row.name for row in FIELDS if not row.switch}
VALUE_FLAGS["--cache-dir"] = "cache_dir"
REPEATED = tuple(row.name for row in FIELDS if row.repeat)
SWITCHES = {row.flag: row.name for row in FIELDS if row.switch}
SWITCHES.update({"--cache": "cache", "--with-proxy": "with_proxy"})
NUMBERS = tuple(row.name for row in FIELDS if type(row.default) is int)
# Inputs that change the answer (settings.Setting.cache says which, and how).
KEY_FIELDS = tuple(row.name for row in FIELDS if row.cache == "value")
REFERENCES = tuple(row.name for row in FIELDS if row.cache == "reference")
HASHED = tuple(row.name for row in FIELDS if row.hashed)
# Environment variables that change where CreateSession goes.
ENDPOINT_ENV = (
    "AWS_ENDPOINT_URL_ROLESANYWHERE",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
)


def cached_answer(args: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The cached ``credential_process`` JSON for these flags, or None (see the module)."""
    values = read_flags(args, env)
    if values is None or not values["cache"]:
        return None
    from ..delivery.cache import CredentialCache, cache_key

    try:
        cache = CredentialCache.at(values["cache_dir"], env)  # type: ignore[arg-type]
        return cache.get(cache_key(*cache_inputs(values, env)))
    except HwSignerError:
        return None  # the full command reports it


def agent_answer(args: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The running agent's ``credential_process`` JSON when ``args`` hold ``--agent [PATH]``;
    None without ``--agent``, or when no agent answers and ``--agent-fallback`` asks the full
    command to sign directly. Raises ``AgentUnavailable`` when no agent answers otherwise."""
    path = agent_flag(args)
    if path is None:
        return None
    from ..delivery.agent import AgentUnavailable, ask_agent, client_socket

    try:
        return ask_agent(client_socket(path, env))
    except AgentUnavailable:
        if "--agent-fallback" in args:
            return None
        raise


def agent_flag(args: Sequence[str]) -> str | None:
    """The PATH of ``--agent [PATH]`` / ``--agent=PATH`` ("" for none), or None without it."""
    for index, arg in enumerate(args):
        if arg == "--agent":
            following = args[index + 1] if index + 1 < len(args) else ""
            return "" if following.startswith("-") else following
        if arg.startswith("--agent="):
            return arg.partition("=")[2]
    return None


def read_flags(
    args: Sequence[str], env: Mapping[str, str] | None = None
) -> dict[str, object] | None:
    """The argparse destinations of ``credential-process ARGS``, settled with the ``HWSIGNER_*``
    variables of ``env`` and the defaults (``sources``), or None where argparse might read the
    arguments differently or refuse them."""
    values: dict[str, object] = dict.fromkeys(VALUE_FLAGS.values())
    values.update(dict.fromkeys(SWITCHES.values(), False))
    rest = list(args)
    while rest:
        name, equals, value = rest.pop(0).partition("=")
        if name in SWITCHES and not equals:
            values[SWITCHES[name]] = True
        elif name in VALUE_FLAGS:
            if not equals:
                if not rest or rest[0].startswith("-"):
                    return None  # argparse would take it for a flag, or miss the value
                value = rest.pop(0)
            destination = VALUE_FLAGS[name]
            earlier = values[destination] if destination in REPEATED else None
            values[destination] = (*earlier, value) if isinstance(earlier, tuple) else value
            if destination in REPEATED and earlier is None:
                values[destination] = (value,)
        else:
            return None
    try:
        for name in NUMBERS:
            if values[name] is not None:
                values[name] = int(values[name])  # type: ignore[call-overload]
        settle(values, [(ENVIRONMENT, environment_values(env or {}))])
    except ValueError:
        return None
    return None if missing(values) else values


def cache_inputs(
    values: Mapping[str, object], env: Mapping[str, str]
) -> tuple[dict[str, object], list[str]]:
    """Every input that changes the answer, and the files whose content is part of it.

    ``values`` are argparse destinations (``vars(args)``, or ``read_flags``).
    """
    fields = {name: values.get(name) for name in KEY_FIELDS}
    for name in REFERENCES:
        value = values.get(name)
        fields[name] = without_pin_value(value) if isinstance(value, str) else value
    fields["env"] = {name: env.get(name) for name in ENDPOINT_ENV}
    files = [
        path
        for path in (values.get(name) for name in HASHED)
        if isinstance(path, str) and path and not path.startswith(("pkcs11:", "handle:"))
    ]
    # A key given as env:NAME or fd:N has no path that names it: its content is part of the key
    # (read once: the full path reuses what a descriptor held, hwsigner._safe.read_reference).
    files += [
        ref
        for ref in (values.get(name) for name in REFERENCES if name not in HASHED)
        if isinstance(ref, str) and ref.startswith(("env:", "fd:"))
    ]
    return fields, files


def without_pin_value(uri: str) -> str:
    """The reference without a ``pin-value`` attribute (``re`` only when there is one)."""
    if "pin-value=" not in uri:
        return uri
    import re

    return re.sub(r"([?&;])pin-value=[^&;]*", r"\1", uri)


__all__ = ["agent_answer", "cache_inputs", "cached_answer", "read_flags", "without_pin_value"]
