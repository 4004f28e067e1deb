"""Where each credential setting comes from: a flag, ``serve --config``, a ``HWSIGNER_*``
variable, or its default, in that order (the first that sets it wins).

    >>> environment_values({"HWSIGNER_ROLE_ARN": "arn:...:role/a", "HWSIGNER_REUSE_PIN": "yes"})
    {'role_arn': 'arn:...:role/a', 'reuse_pin': True}
    >>> values = {"role_arn": None, "reuse_pin": False, "session_duration": None}
    >>> settle(values, [("{variable}", {"role_arn": "arn:...:role/a"})])
    {'role_arn': 'HWSIGNER_ROLE_ARN', 'session_duration': 'default', 'reuse_pin': 'default'}
    >>> values["session_duration"]
    3600

Each setting's variable is ``HWSIGNER_`` and its flag's name in upper snake case
(``--trust-anchor-arn``: ``HWSIGNER_TRUST_ANCHOR_ARN``), derived from ``hwsigner.settings``'
table: a new flag has its variable without another edit. On/off flags take ``1/true/yes`` or
``0/false/no``; repeatable flags comma-separated values; an empty variable is unset.
``--no-verify-ssl`` has none, and ``HWSIGNER_NO_VERIFY_SSL`` is refused: a variable that silently
turns off TLS checks would be a trap. Variables that other settings of other layers (system
TCTI variables, ``AWS_*``) read come after these, where the code that needs them looks.

Variables of the same prefix that are no flag's keep their own meaning: ``HWSIGNER_PKCS11_PIN``
(the token PIN), ``HWSIGNER_TPM_PARENT_PASSWORD``, ``HWSIGNER_AGENT_SOCKET``. Two flags' variables
are the ones hwsigner read before this scheme, with the same meaning:
``HWSIGNER_PKCS8_PASSWORD`` and ``HWSIGNER_TPM_KEY_PASSWORD``.

The cached ``credential-process`` settles its flags here too, so this module imports only the
table: no argparse, json, re or dataclasses.
"""

from __future__ import annotations

from ..settings import FIELDS

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Mapping, MutableMapping, Sequence

    Layer = tuple[str, Mapping[str, object]]

TRUE_WORDS = ("1", "true", "yes")
FALSE_WORDS = ("0", "false", "no")
# Same prefix, their own meaning: no setting may be named so that its variable is one of these.
OTHER_VARIABLES = (
    "HWSIGNER_PKCS11_PIN",
    "HWSIGNER_TPM_PARENT_PASSWORD",
    "HWSIGNER_AGENT_SOCKET",
    "HWSIGNER_AGENT_PID",  # printed by agent --daemon, for kill
)
REFUSED_VARIABLES = {
    "HWSIGNER_NO_VERIFY_SSL": "a variable that silently turns off TLS checks is a trap; "
    "pass --no-verify-ssl on the command line",
}
ENVIRONMENT = "{variable}"  # the label of the HWSIGNER_* layer: each row names its variable


def environment_values(env: Mapping[str, str]) -> dict[str, object]:
    """The settings ``HWSIGNER_*`` variables set, read as their flags would be.

    Raises ``ValueError`` with a one-line reason (never the value: it may be a password).
    """
    for name, reason in REFUSED_VARIABLES.items():
        if name in env:
            raise ValueError(f"{name} is not read: {reason}")
    found: dict[str, object] = {}
    for row in FIELDS:
        text = env.get(row.variable, "") if row.variable else ""
        if not text:
            continue
        if row.switch:
            if text.lower() not in TRUE_WORDS + FALSE_WORDS:
                raise ValueError(f"{row.variable} takes 1/true/yes or 0/false/no")
            found[row.name] = text.lower() in TRUE_WORDS
        elif row.repeat:
            found[row.name] = tuple(part for part in text.split(",") if part)
        elif type(row.default) is int:
            if not (text.isdecimal() and text.isascii()):
                raise ValueError(f"{row.variable} takes a whole number")
            found[row.name] = int(text)
        else:
            found[row.name] = text
    return found


def settle(values: MutableMapping[str, object], layers: Sequence[Layer] = ()) -> dict[str, str]:
    """Fill in each setting of ``values`` no flag set, from the first of ``layers`` that has it,
    else its default (None for a required one); return where each came from.

    ``values`` are argparse destinations, where None (False for an on/off flag, empty for a
    repeatable one) means the flag was not given. A layer is a label (``ENVIRONMENT`` for the
    variables, ``"serve --config"``) and the values it holds.
    """
    sources: dict[str, str] = {}
    for row in FIELDS:
        if row.name not in values:
            continue
        value = values[row.name]
        if row.repeat and value is not None:
            values[row.name] = value = tuple(value)  # type: ignore[arg-type]
        if not (value is None or value is False or value == ()):
            sources[row.name] = "flag"
            continue
        for label, layer in layers:
            if row.name in layer:
                values[row.name] = layer[row.name]
                sources[row.name] = label.format(variable=row.variable)
                break
        else:
            values[row.name] = None if row.required else row.default
            sources[row.name] = "default"
    return sources


def missing(values: Mapping[str, object]) -> list[str]:
    """The required settings still unset, by flag."""
    return [row.flag for row in FIELDS if row.required and values.get(row.name, "") is None]


def describe(sources: Mapping[str, str]) -> str:
    """For ``--debug``: each setting not left at its default, and where it came from (never
    the value)."""
    flags = {row.name: row.flag for row in FIELDS}
    given = (f"{flags[name]} from {source}" for name, source in sources.items())
    return ", ".join(text for text in given if not text.endswith(" from default")) or "defaults"


__all__ = [
    "ENVIRONMENT",
    "OTHER_VARIABLES",
    "REFUSED_VARIABLES",
    "describe",
    "environment_values",
    "missing",
    "settle",
]
