"""The format of one ``credential-process --cache`` entry, read without ``json`` when it can be.

    {"format":2,"key":"<sha256>","reuse_until":1893455100,"credentials":{"Version":1,...}}

``reuse_until`` (seconds since the epoch) is when the entry stops being reused: min(15 minutes,
half its lifetime) before it expires (``CACHE_REUSE_MARGIN``, decided when it is written).
``credentials`` is the ``credential_process`` JSON as ``Credentials.to_process_json`` writes it;
its ``Expiration``, in one fixed UTC form, compares as a string (a hit needs no ``datetime``).
Like ``cache``, this module imports nothing a bare ``python`` has not loaded.
"""

from __future__ import annotations

from . import CACHE_REUSE_MARGIN

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

ISO_LAYOUT = "0000-00-00T00:00:00Z"  # the shape of an Expiration: 0 for a digit
PROCESS_FIELDS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
FORMAT_VERSION = 2


def reuse_until(expiration: float, now: float) -> int:
    """When an entry obtained at ``now`` stops being reused: min(``CACHE_REUSE_MARGIN``, half
    its lifetime) before ``expiration``."""
    return int(expiration - min(CACHE_REUSE_MARGIN, max(expiration - now, 0) / 2))


def entry_answer(text: str, key: str) -> tuple[str, str, int]:
    """The ``credential_process`` JSON an entry for ``key`` holds, its ``Expiration`` and its
    ``reuse_until``; ValueError for anything else.

    An entry as ``put`` writes it, with plain values, is read here without ``json``; any other
    text (escaped values, other spacing, damage) is read with ``json`` and checked in full.
    """
    head = f'{{"format":{FORMAT_VERSION},"key":"{key}","reuse_until":'
    if text.startswith(head) and text.endswith("}"):
        number, comma, rest = text[len(head) : -1].partition(',"credentials":')
        expiration = plain_process_expiration(rest) if comma and number.isdigit() else None
        if expiration is not None and number.isascii():
            return rest, expiration, int(number)
    import json

    from .._safe import load_json

    data = load_json(text)
    if not isinstance(data, dict):
        raise ValueError("not a cache entry")
    if data.get("format") != FORMAT_VERSION or data.get("key") != key:
        raise ValueError("written for another key or format")
    until = data.get("reuse_until")
    if type(until) is not int:
        raise ValueError("reuse_until is not a number")
    expiration = checked_process_json(data["credentials"])
    return json.dumps(data["credentials"], separators=(",", ":")), expiration, until


def plain_process_expiration(text: str) -> str | None:
    """The ``Expiration`` of ``text`` if it is a ``credential_process`` object in the compact
    layout ``Credentials.to_process_json`` writes, with values JSON writes as they are (printable
    ASCII, no quote or backslash: that makes the split exact); None otherwise."""
    head = '{"Version":1,"'
    if not (text.startswith(head) and text.endswith('"}')):
        return None
    fields = {}
    for part in text[len(head) : -2].split('","'):
        name, colon, value = part.partition('":"')
        if not (colon and value and value.isascii() and value.isprintable()):
            return None
        if '"' in value or "\\" in value:
            return None
        fields[name] = value
    if tuple(fields) != PROCESS_FIELDS or not is_utc_time(fields["Expiration"]):
        return None
    return fields["Expiration"]


def is_utc_time(text: str) -> bool:
    """Whether ``text`` is a time in the one form ``ISO_FORMAT`` writes."""
    if len(text) != len(ISO_LAYOUT):
        return False
    pairs = zip(text, ISO_LAYOUT, strict=True)
    return all((c in "0123456789") if shape == "0" else c == shape for c, shape in pairs)


def checked_process_json(data: Any) -> str:
    """The ``Expiration`` of a well-formed ``credential_process`` object; ValueError if not.
    (Expirations in one fixed UTC form compare as strings: a cache hit needs no ``datetime``.)"""
    if not isinstance(data, dict) or data.get("Version") != 1:
        raise ValueError("not credential_process JSON")
    for name in PROCESS_FIELDS:
        if not isinstance(data.get(name), str) or not data[name]:
            raise ValueError(f"{name} is missing")
    if not is_utc_time(data["Expiration"]):
        raise ValueError("Expiration is not in YYYY-MM-DDTHH:MM:SSZ form")
    return str(data["Expiration"])


__all__ = [
    "FORMAT_VERSION",
    "entry_answer",
    "plain_process_expiration",
    "reuse_until",
]
