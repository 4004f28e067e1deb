"""The parameters of a CreateSession request, checked against the service's model.

    >>> from urllib.parse import urlencode
    >>> ra = "arn:aws:rolesanywhere:us-east-1:111122223333:"
    >>> query = urlencode({"profileArn": ra + "profile/p", "trustAnchorArn": ra + "trust-anchor/t",
    ...                    "roleArn": "arn:aws:iam::111122223333:role/r"})
    >>> session_request("/sessions?" + query, b'{"durationSeconds":900}', "us-east-1").duration
    900

"The request accepts [profileArn, roleArn, trustAnchorArn] as URI parameters or as JSON in the
request body"; ``durationSeconds`` (900-43200, default 3600) and ``roleSessionName`` come in the
body. Broken constraints are ``ValidationException`` (400) with AWS's wording.

A refused request, here or in the other checks, is a ``Rejection``: the HTTP status, AWS error
type and message the emulator answers with.

    >>> err = validation("durationSeconds", 899, "Member must have value at least 900")
    >>> err.status, err.error_type, err.detail[:61]
    (400, 'ValidationException', "1 validation error detected: Value '899' at 'durationSeconds'")
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .._safe import load_json
from ..arns import Arn, parse_arn
from ..errors import ConfigError, ServiceError

MIN_DURATION, MAX_DURATION, DEFAULT_DURATION = 900, 43200, 3600
SESSION_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{2,64}")  # [\w+=,.@-], 2 to 64 characters
ARN_PARAMS = (("trustAnchorArn", "trust-anchor"), ("profileArn", "profile"), ("roleArn", "role"))
MAX_FIELDS = 32
MAX_PROPERTIES = 50

# The error type AWS names for a status the emulator answers with (also for injected failures).
ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


# The service's answer when no trusted chain is found; why goes to the side channel only.
UNTRUSTED = "Untrusted signing certificate"


class Rejection(ServiceError):
    """What the emulator answers instead of credentials; ``detail`` is the body's message and
    ``reason`` the precise rule broken (the ``--debug`` log and ``x-hwsigner-emulator-reason``)."""

    def __init__(
        self, status: int, error_type: str, detail: str, reason: str | None = None
    ) -> None:
        super().__init__(error_type, detail, status=status)
        self.detail = detail
        self.reason = reason or detail


def error_type_for(status: int) -> str:
    return ERROR_TYPES.get(status) or ("ValidationException" if status < 500 else "InternalFailure")


def access_denied(detail: str, reason: str | None = None) -> Rejection:
    return Rejection(403, "AccessDeniedException", detail, reason)


def untrusted(reason: str) -> Rejection:
    """A chain the service cannot trust: its generic message, the specific ``reason`` aside."""
    return Rejection(403, "AccessDeniedException", UNTRUSTED, reason)


def not_found(detail: str) -> Rejection:
    return Rejection(404, "ResourceNotFoundException", detail)


def bad_request(detail: str) -> Rejection:
    return Rejection(400, "ValidationException", detail)


def validation(field: str, value: object, constraint: str) -> Rejection:
    """AWS's wording for a parameter that breaks its model's constraint."""
    return bad_request(
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy "
        f"constraint: {constraint}"
    )


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """What a CreateSession request asks for, its ARNs parsed."""

    trust_anchor_arn: str
    profile_arn: str
    role_arn: str
    trust_anchor: Arn
    profile: Arn
    role: Arn
    duration: int = DEFAULT_DURATION
    role_session_name: str | None = None
    instance_properties: tuple[tuple[str, str], ...] = ()


def session_request(target: str, body: bytes, region: str) -> SessionRequest:
    """Read the query and body of ``POST /sessions``; ARN regions must be the signing region."""
    fields = json_body(body)
    query = query_params(target.partition("?")[2])
    arns: dict[str, tuple[str, Arn]] = {}
    for param, kind in ARN_PARAMS:
        text = query.get(param, fields.get(param))
        if text is None:
            raise validation(param, "null", "Member must not be null")
        if not isinstance(text, str):
            raise validation(param, _shown(text), "Member must be a string")
        try:
            arn: Arn | None = parse_arn(text, kind)
        except ConfigError:
            arn = None
        if arn is None or not arn.resource.partition("/")[2]:
            raise validation(param, _shown(text), f"Member must be a valid {kind} ARN")
        arns[param] = (text, arn)
    for param in ("trustAnchorArn", "profileArn"):
        arn = arns[param][1]
        if arn.region != region:  # a scope for another region: 403, as SigV4 services answer
            raise access_denied(
                f"Credential should be scoped to a valid region, not '{region}'.",
                f"{param} is in region {arn.region}, but the request is signed for {region}",
            )
    return SessionRequest(
        trust_anchor_arn=arns["trustAnchorArn"][0],
        profile_arn=arns["profileArn"][0],
        role_arn=arns["roleArn"][0],
        trust_anchor=arns["trustAnchorArn"][1],
        profile=arns["profileArn"][1],
        role=arns["roleArn"][1],
        duration=duration(fields.get("durationSeconds", DEFAULT_DURATION)),
        role_session_name=role_session_name(fields.get("roleSessionName")),
        instance_properties=instance_properties(fields.get("instanceProperties")),
    )


def json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        fields = load_json(body)
    except ValueError:
        raise bad_request("The request body is not valid JSON") from None
    if not isinstance(fields, dict):
        raise bad_request("The request body must be a JSON object")
    return fields


def query_params(query: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise bad_request("The query string has too many parameters") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise bad_request(f"The query parameter {name[:64]!r} is repeated")
        params[name] = value
    return params


def duration(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise validation("durationSeconds", _shown(value), "Member must be an integer")
    if value < MIN_DURATION:
        constraint = f"Member must have value greater than or equal to {MIN_DURATION}"
        raise validation("durationSeconds", value, constraint)
    if value > MAX_DURATION:
        constraint = f"Member must have value less than or equal to {MAX_DURATION}"
        raise validation("durationSeconds", value, constraint)
    return value


def role_session_name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not SESSION_NAME.fullmatch(value):
        raise validation(
            "roleSessionName",
            _shown(value),
            r"Member must have length between 2 and 64 and satisfy regular expression pattern: "
            r"[\w+=,.@-]*",
        )
    return value


def instance_properties(value: object) -> tuple[tuple[str, str], ...]:
    """``instanceProperties``: a string-to-string map of at most 50 entries, keys and values of
    1 to 200 characters (the API's ``InstanceProperty.properties``)."""
    if value is None:
        return ()
    if not isinstance(value, dict) or len(value) > MAX_PROPERTIES:
        raise validation(
            "instanceProperties", _shown(value), f"Map must have at most {MAX_PROPERTIES} entries"
        )
    for key, text in value.items():
        if not (isinstance(text, str) and 1 <= len(key) <= 200 and 1 <= len(text) <= 200):
            raise validation(
                f"instanceProperties.{_shown(key)[:64]}",
                _shown(text),
                "Keys and values must be strings of length between 1 and 200",
            )
    return tuple(sorted(value.items()))


def _shown(value: object) -> str:
    """A value as an error message may quote it: short, on one line."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:128].replace("\n", " ").replace("\r", " ")


__all__ = [
    "Rejection", "SessionRequest", "access_denied", "bad_request", "duration", "error_type_for",
    "instance_properties", "json_body", "not_found", "query_params", "role_session_name",
    "session_request", "untrusted", "validation",
]  # fmt: skip
