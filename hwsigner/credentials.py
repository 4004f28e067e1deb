"""Temporary AWS credentials as a value, and the JSON forms they travel in.

    >>> from datetime import datetime, timezone
    >>> c = Credentials("ASIAEXAMPLE", "secret", "token", datetime(2030, 1, 1, tzinfo=timezone.utc))
    >>> c
    Credentials(access_key_id='ASIAEXAMPLE', expiration='2030-01-01T00:00:00Z')
    >>> c.to_process_json()[:40]
    '{"Version":1,"AccessKeyId":"ASIAEXAMPLE"'

Values from outside (the service's answer, a cache entry) enter through ``from_service`` and
``from_process_json`` only, and are checked there once (``checked``): an access key id of 16 to
128 capital letters and digits, a secret and a token of printable ASCII without spaces within
bounds, an expiration in AWS's UTC form. Nothing a service sends can then break the line, the
quoting or the section of any delivery form (INI file, shell, JSON, HTTP).

This module imports nothing heavy: a cached ``credential-process`` uses it alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# The values AWS issues, with room to spare: what the check lets through cannot break a line.
SHAPES = {
    "AccessKeyId": re.compile(r"[A-Z0-9]{16,128}"),
    "SecretAccessKey": re.compile(r"[!-~]{1,1024}"),
    "SessionToken": re.compile(r"[!-~]{1,16384}"),
    "Expiration": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]00:00)", re.ASCII),
}


@dataclass(frozen=True, slots=True)
class Credentials:
    """Access key, secret key, session token and expiry. ``repr`` shows no secret."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime

    def __repr__(self) -> str:
        return (
            f"Credentials(access_key_id={self.access_key_id!r}, "
            f"expiration={format_time(self.expiration)!r})"
        )

    def remaining(self, now: datetime) -> timedelta:
        return self.expiration - now

    def to_process_json(self) -> str:
        """The ``credential_process`` output the AWS SDKs read: one compact JSON object."""
        return json.dumps(
            {
                "Version": 1,
                "AccessKeyId": self.access_key_id,
                "SecretAccessKey": self.secret_access_key,
                "SessionToken": self.session_token,
                "Expiration": format_time(self.expiration),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_process_json(cls, text: str) -> Credentials:
        """Read ``to_process_json`` output back; ValueError when it is not that."""
        from ._safe import load_json

        data = load_json(text)
        if not isinstance(data, dict) or data.get("Version") != 1:
            raise ValueError("not credential_process output")
        return checked(
            data["AccessKeyId"], data["SecretAccessKey"], data["SessionToken"], data["Expiration"]
        )

    @classmethod
    def from_service(cls, body: dict[str, Any]) -> Credentials:
        """``credentialSet[0].credentials`` of a CreateSession answer; ValueError otherwise."""
        try:
            creds = body["credentialSet"][0]["credentials"]
            return checked(
                creds["accessKeyId"],
                creds["secretAccessKey"],
                creds["sessionToken"],
                creds["expiration"],
            )
        except (KeyError, IndexError, TypeError):
            raise ValueError("no credentialSet[0].credentials in the answer") from None


def checked(key_id: object, secret: object, token: object, expiration: object) -> Credentials:
    """A ``Credentials`` from values read from outside, each shape-checked; ValueError names
    the first bad field (never its value)."""
    values = {
        "AccessKeyId": key_id,
        "SecretAccessKey": secret,
        "SessionToken": token,
        "Expiration": expiration,
    }
    for name, value in values.items():
        if not isinstance(value, str) or not SHAPES[name].fullmatch(value):
            raise ValueError(f"{name} is not in the form AWS issues")
    return Credentials(str(key_id), str(secret), str(token), parse_time(str(expiration)))


def utcnow() -> datetime:
    """Now, in UTC: the default clock of everything that compares with an expiry."""
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(ISO_FORMAT)


def parse_time(text: str) -> datetime:
    """An ISO 8601 UTC time as AWS writes it (``2024-07-06T12:38:59Z``, fractions allowed)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


__all__ = ["Credentials", "checked", "format_time", "parse_time", "utcnow"]
