"""What ``serve`` serves: the roles of ``serve --config FILE``, or the one role of its flags.

    [identity]
    certificate = pkcs11:token=node;object=ra
    private-key = pkcs11:token=node;object=ra
    [role build]
    trust-anchor-arn = arn:aws:rolesanywhere:...
    profile-arn = arn:aws:rolesanywhere:...
    role-arn = arn:aws:iam::111122223333:role/build
    auth-token-file = /run/hwsigner/build.token

Keys are the long flags without ``--``, read from the one table of ``hwsigner.settings``:
``[identity]`` takes what opens the key and certificate (the ``certificate`` and ``key``
groups, ``intermediates`` and ``no-verify-ssl``, which every role shares), each
``[role NAME]`` the rest of the table (what one CreateSession needs) and ``auth-token-file``.
A new setting is a key here with no edit. Every mistake names the file, the section and the
key; the roles keep the file's order (the first is served on IMDSv2 and ``/credentials``).
"""

from __future__ import annotations

import argparse
import configparser
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._safe import read_user_file
from ..errors import ConfigError
from ..settings import FIELDS, Setting, Settings

SHARED = ("intermediates", "no_verify_ssl")  # session-group fields every role shares
IDENTITY_KEYS = {
    row.flag[2:]: row for row in FIELDS if row.group != "session" or row.name in SHARED
}
ROLE_KEYS = {row.flag[2:]: row for row in FIELDS if row.flag[2:] not in IDENTITY_KEYS}
TOKEN_KEY = "auth-token-file"  # noqa: S105 - a key name
ROLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True, slots=True)
class RolePlan:
    """One role to serve: its name in paths, its settings and its container token, if any."""

    name: str
    settings: Settings
    auth_token: str | None


def roles_from_args(args: argparse.Namespace) -> list[RolePlan]:
    """The one role of ``serve``'s flags, named after the role ARN's last part."""
    missing = [row.flag for row in FIELDS if row.required and getattr(args, row.name) is None]
    if missing:
        raise ConfigError(f"serve needs {', '.join(missing)}", hint="or --config FILE")
    settings = Settings.from_args(args)
    token = read_auth_token(args.auth_token_file) if args.auth_token_file else None
    return [RolePlan(settings.role_arn.rsplit("/", 1)[-1], settings, token)]


def roles_from_file(path: str) -> list[RolePlan]:
    """The roles of a ``--config`` file, each with the identity's settings."""
    parser = configparser.ConfigParser(interpolation=None, default_section="\0", strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign] # keys as written
    try:
        parser.read_string(read_user_file(path, "config", "--config").decode(), source=path)
    except (configparser.Error, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not a config file: {first}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    if "identity" not in parser:
        raise ConfigError(f"{path}: no [identity] section", hint="it holds certificate = ...")
    identity = section_values(path, parser["identity"], "identity", IDENTITY_KEYS)
    roles = []
    for section in parser.sections():
        if section == "identity":
            continue
        kind, _, name = section.partition(" ")
        if kind != "role" or not ROLE_NAME.fullmatch(name.strip()):
            raise ConfigError(
                f"{path}: [{section}] is not [identity] or [role NAME]",
                hint="NAME: letters, digits, '.', '_' and '-', as in /role/NAME",
            )
        values = section_values(path, parser[section], section, {**ROLE_KEYS, TOKEN_KEY: None})
        token_file = values.pop(TOKEN_KEY, None)
        for row in FIELDS:
            if row.required and row.name not in values:
                raise ConfigError(f"{path}: [{section}] needs {row.flag[2:]}")
        token = None
        if token_file is not None:
            try:
                token = read_auth_token(str(token_file))
            except ConfigError as exc:
                raise ConfigError(
                    f"{path}: [{section}] {TOKEN_KEY}: {exc}", hint=exc.hint
                ) from None
        roles.append(RolePlan(name.strip(), Settings(**identity, **values), token))
    if not roles:
        raise ConfigError(f"{path}: no [role NAME] section")
    if identity.get("certificate") is None:
        raise ConfigError(f"{path}: [identity] needs certificate")
    return roles


def section_values(
    path: str, section: configparser.SectionProxy, name: str, keys: Mapping[str, Setting | None]
) -> dict[str, Any]:
    """The section's keys as ``Settings`` keywords (``auth-token-file`` as it is)."""
    values: dict[str, Any] = {}
    for key, text in section.items():
        where = f"{path}: [{name}] {key}"
        if key not in keys:
            other = "[identity]" if key in IDENTITY_KEYS else "a [role NAME] section"
            known = key in IDENTITY_KEYS or key in ROLE_KEYS or key == TOKEN_KEY
            raise ConfigError(
                f"{where}: {'belongs in ' + other if known else 'is not a setting'}",
                hint=None if known else "keys are the long flags without --",
            )
        row = keys[key]
        values[row.name if row else key] = value_of(row, text.strip(), where)
    return values


def value_of(row: Setting | None, text: str, where: str) -> object:
    """A key's text as its field takes it: a switch, a number, a list, or a string."""
    if row is None:
        return text
    if row.switch:
        if text.lower() not in TRUE + FALSE:
            raise ConfigError(f"{where}: {text!r} is not true or false")
        return text.lower() in TRUE
    if isinstance(row.default, int) and not isinstance(row.default, bool):
        if not text.isascii() or not text.isdigit():
            raise ConfigError(f"{where}: {text!r} is not a whole number")
        return int(text)
    if row.repeat:  # a repeatable flag: instance-property = k1=v1, k2=v2
        return tuple(item.strip() for item in text.split(",") if item.strip())
    if not text:
        raise ConfigError(f"{where}: no value")
    return text


def read_auth_token(path: str) -> str:
    """The container endpoint's token: the file's content exactly, which must be one word of
    visible ASCII with no newline, since clients send the file as it is as a header value
    (botocore refuses a trailing newline: "not a legal header value")."""
    make = """python3 -c 'import secrets; print(secrets.token_hex(32), end="")'"""
    fix = f"write it without a newline: {make} > {path}"
    try:
        token = read_user_file(path, "token", "--auth-token-file", 4096).decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"the token file {path} holds non-ASCII bytes", hint=fix) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read the token file {path}: {exc.strerror or exc}",
            hint="check --auth-token-file",
        ) from None
    if not token:
        raise ConfigError(f"the token file {path} is empty", hint=fix)
    if not all("!" <= c <= "~" for c in token):
        raise ConfigError(
            f"the token file {path} holds whitespace, a newline or a control character,"
            " which AWS SDKs refuse in a header",
            hint=fix,
        )
    return token


__all__ = [
    "IDENTITY_KEYS", "ROLE_KEYS", "TOKEN_KEY", "RolePlan", "read_auth_token", "roles_from_args",
    "roles_from_file", "section_values",
]  # fmt: skip
