"""Temporary AWS credentials as a value, and the JSON forms they travel in.

    >>> from datetime import datetime, timezone
    >>> c = Credentials("ASIAEXAMPLE", "secret", "token", datetime(2030, 1, 1, tzinfo=timezone.utc))
    >>> c
    Credentials(access_key_id='ASIAEXAMPLE', expiration='2030-01-01T00:00:00Z')
    >>> c.to_process_json()[:40]
    '{"Version":1,"AccessKeyId":"ASIAEXAMPLE"'

This module imports nothing heavy: a cached ``credential-process`` uses it alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


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
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("Version") != 1:
            raise ValueError("not credential_process output")
        return cls(
            _text(data, "AccessKeyId"),
            _text(data, "SecretAccessKey"),
            _text(data, "SessionToken"),
            parse_time(_text(data, "Expiration")),
        )

    @classmethod
    def from_service(cls, body: dict[str, Any]) -> Credentials:
        """``credentialSet[0].credentials`` of a CreateSession answer; ValueError otherwise."""
        try:
            creds = body["credentialSet"][0]["credentials"]
            return cls(
                _text(creds, "accessKeyId"),
                _text(creds, "secretAccessKey"),
                _text(creds, "sessionToken"),
                parse_time(_text(creds, "expiration")),
            )
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"no credentials in the answer ({exc!r})") from None


def _text(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is not a non-empty string")
    return value


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(ISO_FORMAT)


def parse_time(text: str) -> datetime:
    """An ISO 8601 UTC time as AWS writes it (``2024-07-06T12:38:59Z``, fractions allowed)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
