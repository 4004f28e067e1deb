"""``credential-process --cache`` answered from the cache before argparse is loaded.

    >>> cached_answer(["--cache", "--certificate", "leaf.pem", ...], os.environ)  # doctest: +SKIP
    '{"Version":1,"AccessKeyId":"ASIA...",...}'

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

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# The value-taking flags of credential-process, by argparse destination (options.py).
VALUE_FLAGS = {
    "--intermediates": "intermediates",
    "--trust-anchor-arn": "trust_anchor_arn",
    "--profile-arn": "profile_arn",
    "--role-arn": "role_arn",
    "--session-duration": "session_duration",
    "--role-session-name": "role_session_name",
    "--region": "region",
    "--endpoint": "endpoint",
    "--certificate": "certificate",
    "--private-key": "private_key",
    "--pkcs11-lib": "pkcs11_lib",
    "--tpm-key-password": "tpm_key_password",
    "--tpm-tcti": "tpm_tcti",
    "--pkcs8-password": "pkcs8_password",
    "--cache-dir": "cache_dir",
}
SWITCHES = {
    "--cache": "cache",
    "--no-verify-ssl": "no_verify_ssl",
    "--with-proxy": "with_proxy",
    "--reuse-pin": "reuse_pin",
    "--no-tpm-key-password": "no_tpm_key_password",
}
REQUIRED = ("trust_anchor_arn", "profile_arn", "role_arn")
DEFAULT_DURATION = 3600
# Inputs that change the answer. A PIN does not, and must not end up hashed in a file name.
KEY_FIELDS = (
    "trust_anchor_arn",
    "profile_arn",
    "role_arn",
    "region",
    "endpoint",
    "session_duration",
    "role_session_name",
    "intermediates",
    "pkcs11_lib",
    "tpm_tcti",
)
# Environment variables that change where CreateSession goes.
ENDPOINT_ENV = (
    "AWS_ENDPOINT_URL_ROLESANYWHERE",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
)


def cached_answer(args: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The cached ``credential_process`` JSON for these flags, or None (see the module)."""
    values = read_flags(args)
    if values is None or not values["cache"]:
        return None
    from ..cache import CredentialCache, cache_key

    try:
        cache = CredentialCache.at(values["cache_dir"], env)  # type: ignore[arg-type]
        return cache.get(cache_key(*cache_inputs(values, env)))
    except HwSignerError:
        return None  # the full command reports it


def read_flags(args: Sequence[str]) -> dict[str, object] | None:
    """The argparse destinations of ``credential-process ARGS``, or None where argparse might
    read the arguments differently or refuse them."""
    values: dict[str, object] = dict.fromkeys(VALUE_FLAGS.values())
    values.update(dict.fromkeys(SWITCHES.values(), False))
    values["session_duration"] = DEFAULT_DURATION
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
            values[VALUE_FLAGS[name]] = value
        else:
            return None
    if any(values[name] is None for name in REQUIRED):
        return None
    try:
        values["session_duration"] = int(values["session_duration"])  # type: ignore[call-overload]
    except ValueError:
        return None
    return values


def cache_inputs(
    values: Mapping[str, object], env: Mapping[str, str]
) -> tuple[dict[str, object], list[str]]:
    """Every input that changes the answer, and the files whose content is part of it.

    ``values`` are argparse destinations (``vars(args)``, or ``read_flags``).
    """
    fields = {name: values.get(name) for name in KEY_FIELDS}
    for name in ("certificate", "private_key"):
        value = values.get(name)
        fields[name] = without_pin_value(value) if isinstance(value, str) else value
    fields["env"] = {name: env.get(name) for name in ENDPOINT_ENV}
    files = [
        path
        for path in (values.get("certificate"), values.get("intermediates"))
        if isinstance(path, str) and path and not path.startswith("pkcs11:")
    ]
    return fields, files


def without_pin_value(uri: str) -> str:
    """The reference without a ``pin-value`` attribute (``re`` only when there is one)."""
    if "pin-value=" not in uri:
        return uri
    import re

    return re.sub(r"([?&;])pin-value=[^&;]*", r"\1", uri)
