"""The IAM Roles Anywhere CreateSession client: hwsigner's only network code.

    >>> import json, tempfile
    >>> from hwsigner import Settings, load_identity
    >>> from hwsigner.devpki import DevPki
    >>> from hwsigner.transport import Response
    >>> cert, key = DevPki.create(tempfile.mkdtemp()).new_leaf("ec-p256", "device")
    >>> identity, key = load_identity(str(cert), str(key))
    >>> def service(request):                  # any Request -> Response callable
    ...     print(request.method, request.url.split("?")[0])
    ...     return Response(201, {}, json.dumps({"credentialSet": [{"credentials": {
    ...         "accessKeyId": "ASIAEXAMPLE0000000", "secretAccessKey": "secret",
    ...         "sessionToken": "token", "expiration": "2030-01-01T00:00:00Z"}}]}).encode())
    >>> ra = "arn:aws:rolesanywhere:eu-west-1:111122223333:"
    >>> settings = Settings(trust_anchor_arn=ra + "trust-anchor/ta", profile_arn=ra + "profile/p",
    ...                     role_arn="arn:aws:iam::111122223333:role/app")
    >>> request_credentials(settings, identity, key, transport=service)
    POST https://rolesanywhere.eu-west-1.amazonaws.com/sessions
    Credentials(access_key_id='ASIAEXAMPLE0000000', expiration='2030-01-01T00:00:00Z')

The transport is one callable, ``Request -> Response``: a plain function (as above), or the
default ``HttpTransport`` (tests point it at a loopback emulator).
"""

from __future__ import annotations

import json
import os
import random
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from ._log import debug
from ._safe import load_json, one_line
from .arns import endpoint_url, parse_arn, signing_region
from .credentials import Credentials, utcnow
from .errors import ConfigError, NetworkError, ServiceError
from .identity import Identity
from .keys import KeyBackend
from .settings import Settings
from .sigv4x509 import Request, sign
from .transport import HttpTransport, Response, check_endpoint

Transport = Callable[[Request], Response]

MIN_DURATION, MAX_DURATION = 900, 43200
# API_InstanceProperty: "Map Entries: ... Maximum number of 50 items", keys and values of
# "Minimum length of 1. Maximum length of 200".
MAX_PROPERTIES, MAX_PROPERTY_LENGTH = 50, 200
PROPERTY_HINT = "write each --instance-property as KEY=VALUE, 1 to 200 printable characters each"
DEFAULT_ATTEMPTS = 3
BACKOFF_BASE, BACKOFF_CAP = 0.25, 5.0
REFRESH_DEADLINE = 60.0  # no retry starts later; an attempt has its own 30 s (transport.py)
THROTTLING = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "Throttling", "RequestLimitExceeded"}
)
HINTS = {
    "AccessDeniedException": "check that the certificate chains to the trust anchor, is valid, "
    "and that the profile and the role's trust policy allow it",
    "ValidationException": "check the ARNs, --session-duration and --role-session-name",
    "ResourceNotFoundException": "check that the trust anchor, profile and role exist and are "
    "enabled in this account and region",
}


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how a CreateSession request goes, checked once."""

    url: str
    region: str
    body: bytes


def resolve(params: Settings, env: Mapping[str, str] | None = None) -> Target:
    """Check the ARNs and duration; choose the region and endpoint; build the URL and body."""
    env = os.environ if env is None else env
    anchor = parse_arn(params.trust_anchor_arn, "trust-anchor")
    profile = parse_arn(params.profile_arn, "profile")
    parse_arn(params.role_arn, "role")
    region = signing_region(anchor, profile, params.region)
    if not MIN_DURATION <= params.session_duration <= MAX_DURATION:
        raise ConfigError(
            f"--session-duration {params.session_duration} is out of range",
            hint=f"use {MIN_DURATION} to {MAX_DURATION} seconds",
        )
    base = params.endpoint or env.get("AWS_ENDPOINT_URL_ROLESANYWHERE") or endpoint_url(region, env)
    if not base.startswith(("https://", "http://")):
        base = "https://" + base
    query = "&".join(
        f"{name}={quote(value, safe='')}"
        for name, value in (
            ("profileArn", params.profile_arn),
            ("roleArn", params.role_arn),
            ("trustAnchorArn", params.trust_anchor_arn),
        )
    )
    body: dict[str, object] = {"durationSeconds": params.session_duration}
    if params.role_session_name:
        body["roleSessionName"] = params.role_session_name
    properties = instance_properties(params.instance_property)
    if properties:
        body["instanceProperties"] = properties
    url = f"{base.rstrip('/')}/sessions?{query}"
    return Target(url, region, json.dumps(body, separators=(",", ":")).encode())


def instance_properties(given: object) -> dict[str, str]:
    """``KEY=VALUE`` texts (or a mapping, from Python) as CreateSession's ``instanceProperties``
    object, checked against the service's limits before anything is sent."""
    pairs = list(given.items()) if isinstance(given, Mapping) else []
    if not isinstance(given, Mapping):
        for text in given or ():  # type: ignore[attr-defined]
            key, equals, value = str(text).partition("=")
            if not equals:
                raise ConfigError(
                    f"instance property {one_line(key, 60)!r} has no '='", hint=PROPERTY_HINT
                )
            pairs.append((key, value))
    if len(pairs) > MAX_PROPERTIES:
        raise ConfigError(
            f"{len(pairs)} instance properties; at most {MAX_PROPERTIES}", hint=PROPERTY_HINT
        )
    found: dict[str, str] = {}
    for key, value in pairs:
        for part in (key, value):
            if not isinstance(part, str) or not 1 <= len(part) <= MAX_PROPERTY_LENGTH:
                raise ConfigError(
                    f"instance property {one_line(str(key), 60)!r}: a key or value is not 1 to "
                    f"{MAX_PROPERTY_LENGTH} characters long",
                    hint=PROPERTY_HINT,
                )
            if not part.isprintable():
                raise ConfigError(
                    f"instance property {one_line(key, 60)!r} holds a control character",
                    hint=PROPERTY_HINT,
                )
        if key in found:
            raise ConfigError(f"instance property {key!r} is given twice", hint=PROPERTY_HINT)
        found[key] = value
    return found


def max_attempts(env: Mapping[str, str]) -> int:
    text = env.get("AWS_MAX_ATTEMPTS", "")
    if not text:
        return DEFAULT_ATTEMPTS
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"AWS_MAX_ATTEMPTS={text!r} is not a positive number")
    return int(text)


def backoff(attempt: int) -> float:
    """Capped exponential backoff with full jitter, for the pause after ``attempt`` failed."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))  # noqa: S311


def request_credentials(
    settings: Settings,
    identity: Identity,
    key: KeyBackend,
    *,
    transport: Transport | None = None,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    target: Target | None = None,
) -> Credentials:
    """Call CreateSession, re-signing each attempt, and return the first credential set.

    ``target`` is ``resolve(settings, env)`` when the caller has it already (``Session``
    checks the settings once, when it opens).
    """
    env = os.environ if env is None else env
    target = target or resolve(settings, env)
    transport = transport or HttpTransport.from_env(env)
    attempts = max_attempts(env)
    debug("endpoint: %s (region %s)", target.url.split("?")[0], target.region)
    debug("request body: %s", target.body.decode())
    check_endpoint(target.url)
    request = Request("POST", target.url, (("Content-Type", "application/json"),), target.body)
    signer = identity.signer(key)
    deadline = clock() + timedelta(seconds=REFRESH_DEADLINE)
    for attempt in range(1, attempts + 1):
        signed = sign(request, signer, target.region, clock())
        debug("canonical request:\n%s", signed.canonical_request)
        debug("string to sign:\n%s", signed.string_to_sign)
        try:
            response = transport(signed.request)
        except NetworkError as exc:
            failure: NetworkError | ServiceError = exc
        else:
            if response.status in (200, 201):
                return parse_credentials(response, clock())
            failure = service_error(response)
            if not retryable(failure):
                raise failure
        pause = backoff(attempt)
        if attempt == attempts or clock() + timedelta(seconds=pause) > deadline:
            raise failure
        debug("attempt %d of %d failed: %s", attempt, attempts, failure)
        sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


def retryable(error: ServiceError) -> bool:
    return error.status >= 500 or error.status == 429 or error.error_type in THROTTLING


def parse_credentials(response: Response, now: datetime) -> Credentials:
    """The credentials of a 200/201 answer, checked (``Credentials.checked``) and unexpired."""
    try:
        credentials = Credentials.from_service(load_json(response.body))
    except ValueError as exc:
        raise ServiceError(
            "InvalidResponse",
            f"CreateSession answered {response.status} without usable credentials: "
            + one_line(str(exc)),
            status=response.status,
            hint="check --endpoint: it should be IAM Roles Anywhere",
        ) from None
    if credentials.expiration <= now:
        raise ServiceError(
            "InvalidResponse",
            "CreateSession answered with credentials that have already expired",
            status=response.status,
            hint="check the clocks of this machine and of the endpoint",
        )
    return credentials


def service_error(response: Response) -> ServiceError:
    """AWS's error type and message, from ``x-amzn-ErrorType`` or the JSON body."""
    try:
        body = load_json(response.body or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    raw_type = (
        response.headers.get("x-amzn-errortype")
        or body.get("__type")
        or body.get("code")
        or body.get("Code")
        or f"HTTP{response.status}"
    )
    error_type = one_line(str(raw_type).split(":")[0].split("#")[-1], 100)
    message = one_line(str(body.get("message") or body.get("Message") or ""))
    return ServiceError(error_type, message, status=response.status, hint=HINTS.get(error_type))


def create_session(
    params: Settings, identity: Identity, key: KeyBackend, **options: Any
) -> Credentials:
    """Deprecated: ``request_credentials``, under the name it had until 0.1."""
    warnings.warn(
        "hwsigner.rolesanywhere.create_session is deprecated: use request_credentials",
        DeprecationWarning,
        stacklevel=2,
    )
    return request_credentials(params, identity, key, **options)


def SessionParams(
    trust_anchor_arn: str,
    profile_arn: str,
    role_arn: str,
    session_duration: int = 3600,
    role_session_name: str | None = None,
    region: str | None = None,
    endpoint: str | None = None,
) -> Settings:
    """Deprecated: the ``Settings`` of a request, as the class it replaced took them."""
    warnings.warn(
        "hwsigner.rolesanywhere.SessionParams is deprecated: use hwsigner.Settings",
        DeprecationWarning,
        stacklevel=2,
    )
    return Settings(
        trust_anchor_arn=trust_anchor_arn,
        profile_arn=profile_arn,
        role_arn=role_arn,
        session_duration=session_duration,
        role_session_name=role_session_name,
        region=region,
        endpoint=endpoint,
    )


__all__ = ["Target", "Transport", "backoff", "max_attempts", "parse_credentials",
           "request_credentials", "resolve", "retryable", "service_error", "utcnow"]  # fmt: skip
