"""The CreateSession client: request shape, regions and endpoints, retries, AWS errors.

The transport here is a plain function (the client's one seam for HTTP), so each attempt can be
inspected; the same client talks to the real emulator over loopback in test_cli_core.py.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from hwsigner.errors import ConfigError, NetworkError, ServiceError
from hwsigner.identity import load_identity
from hwsigner.rolesanywhere import request_credentials, resolve
from hwsigner.settings import Settings
from hwsigner.sigv4x509 import Request
from hwsigner.transport import Response

from .helpers import PROFILE_ARN, ROLE_ARN, TRUST_ANCHOR_ARN

PARAMS = Settings(trust_anchor_arn=TRUST_ANCHOR_ARN, profile_arn=PROFILE_ARN, role_arn=ROLE_ARN)
GOOD_BODY = json.dumps(
    {
        "credentialSet": [
            {
                "credentials": {
                    "accessKeyId": "ASIAEXAMPLEEXAMPLE00",
                    "secretAccessKey": "s" * 40,
                    "sessionToken": "t" * 100,
                    "expiration": "2030-01-01T01:00:00Z",
                }
            }
        ]
    }
).encode()


def arn(kind: str, region: str) -> str:
    return f"arn:aws:rolesanywhere:{region}:111122223333:{kind}/x"


def test_request_shape() -> None:
    target = resolve(
        Settings(
            trust_anchor_arn=TRUST_ANCHOR_ARN,
            profile_arn=PROFILE_ARN,
            role_arn=ROLE_ARN,
            session_duration=900,
            role_session_name="build-42",
        ),
        env={},
    )
    assert target.region == "us-east-1"
    assert target.url == (
        "https://rolesanywhere.us-east-1.amazonaws.com/sessions?"
        "profileArn=arn%3Aaws%3Arolesanywhere%3Aus-east-1%3A111122223333%3Aprofile%2Fpr-0001&"
        "roleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fhwsigner-test&"
        "trustAnchorArn=arn%3Aaws%3Arolesanywhere%3Aus-east-1%3A111122223333%3Atrust-anchor%2Fta-0001"
    )
    assert target.body == b'{"durationSeconds":900,"roleSessionName":"build-42"}'


@pytest.mark.parametrize(
    ("region", "env", "host"),
    [
        ("eu-west-1", {}, "rolesanywhere.eu-west-1.amazonaws.com"),
        ("cn-north-1", {}, "rolesanywhere.cn-north-1.amazonaws.com.cn"),
        (
            "us-gov-west-1",
            {"AWS_USE_FIPS_ENDPOINT": "true"},
            "rolesanywhere-fips.us-gov-west-1.amazonaws.com",
        ),
        ("eu-west-1", {"AWS_USE_DUALSTACK_ENDPOINT": "true"}, "rolesanywhere.eu-west-1.api.aws"),
        ("eu-west-1", {"AWS_ENDPOINT_URL_ROLESANYWHERE": "http://127.0.0.1:9"}, "127.0.0.1:9"),
    ],
)
def test_endpoints(region: str, env: dict[str, str], host: str) -> None:
    params = Settings(
        trust_anchor_arn=arn("trust-anchor", region),
        profile_arn=arn("profile", region),
        role_arn=ROLE_ARN,
    )
    assert resolve(params, env).url.split("/")[2] == host


def test_region_flag_overrides_and_mismatch_is_refused() -> None:
    params = Settings(
        trust_anchor_arn=TRUST_ANCHOR_ARN,
        profile_arn=PROFILE_ARN,
        role_arn=ROLE_ARN,
        region="us-west-2",
    )
    assert resolve(params, {}).region == "us-west-2"
    mismatch = Settings(
        trust_anchor_arn=TRUST_ANCHOR_ARN,
        profile_arn=arn("profile", "eu-west-1"),
        role_arn=ROLE_ARN,
    )
    with pytest.raises(ConfigError, match="us-east-1 but the profile is in eu-west-1"):
        resolve(mismatch, {})


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        (
            Settings(
                trust_anchor_arn="arn:aws:rolesanywhere:us-east-1:1:trust-anchor/x",
                profile_arn=PROFILE_ARN,
                role_arn=ROLE_ARN,
            ),
            "--trust-anchor-arn is not an ARN",
        ),
        (
            Settings(
                trust_anchor_arn=TRUST_ANCHOR_ARN, profile_arn=TRUST_ANCHOR_ARN, role_arn=ROLE_ARN
            ),
            "--profile-arn is not a profile",
        ),
        (
            Settings(
                trust_anchor_arn=TRUST_ANCHOR_ARN, profile_arn=PROFILE_ARN, role_arn=PROFILE_ARN
            ),
            "--role-arn is not a role",
        ),
        (
            Settings(
                trust_anchor_arn=TRUST_ANCHOR_ARN,
                profile_arn=PROFILE_ARN,
                role_arn=ROLE_ARN,
                session_duration=899,
            ),
            "out of range",
        ),
        (
            Settings(
                trust_anchor_arn=TRUST_ANCHOR_ARN,
                profile_arn=PROFILE_ARN,
                role_arn=ROLE_ARN,
                session_duration=43201,
            ),
            "out of range",
        ),
    ],
)
def test_bad_params(params: Settings, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        resolve(params, {})


class Script:
    """A transport that answers from a script and records every request it was sent."""

    def __init__(self, *answers: Response | Exception) -> None:
        self.answers = list(answers)
        self.sent: list[Request] = []

    def __call__(self, request: Request) -> Response:
        self.sent.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def ticking_clock():
    moment = datetime(2030, 1, 1, tzinfo=timezone.utc)

    def now() -> datetime:
        nonlocal moment
        moment += timedelta(seconds=1)
        return moment

    return now


def unavailable() -> Response:
    return Response(503, {"x-amzn-errortype": "ServiceUnavailableException"}, b'{"message":"down"}')


@pytest.fixture(scope="module")
def identity(pki):
    cert, key = pki.new_leaf("ec-p256", "client")
    return load_identity(str(cert), str(key))


def call(identity, transport: Script, env: dict[str, str] | None = None):
    sleeps: list[float] = []
    creds = request_credentials(
        PARAMS,
        *identity,
        transport=transport,
        env=env or {},
        clock=ticking_clock(),
        sleep=sleeps.append,
    )
    return creds, sleeps


def test_retries_are_resigned_with_a_fresh_date(identity) -> None:
    script = Script(unavailable(), NetworkError("reset"), Response(201, {}, GOOD_BODY))
    creds, sleeps = call(identity, script)
    assert creds.access_key_id == "ASIAEXAMPLEEXAMPLE00"
    dates = [dict(r.headers)["X-Amz-Date"] for r in script.sent]
    signatures = [dict(r.headers)["Authorization"] for r in script.sent]
    assert len(set(dates)) == 3 and len(set(signatures)) == 3
    assert len(sleeps) == 2 and all(0 <= s <= 5 for s in sleeps)


def test_attempts_are_bounded_and_configurable(identity) -> None:
    with pytest.raises(ServiceError, match="ServiceUnavailableException: down") as caught:
        call(identity, Script(*[unavailable()] * 3))
    assert caught.value.status == 503
    script = Script(*[unavailable()] * 5)
    with pytest.raises(ServiceError):
        call(identity, script, {"AWS_MAX_ATTEMPTS": "5"})
    assert len(script.sent) == 5


def test_retries_stop_at_the_refresh_deadline(identity) -> None:
    """However many attempts AWS_MAX_ATTEMPTS allows, no retry starts 60 s after the first."""
    sleeps: list[float] = []
    moment = datetime(2030, 1, 1, tzinfo=timezone.utc)

    def slow_clock() -> datetime:  # each attempt (sign, send, check) takes 10 s
        nonlocal moment
        moment += timedelta(seconds=5)
        return moment

    script = Script(*[unavailable()] * 50)
    with pytest.raises(ServiceError, match="ServiceUnavailableException"):
        request_credentials(PARAMS, *identity, transport=script, env={"AWS_MAX_ATTEMPTS": "50"},
                            clock=slow_clock, sleep=sleeps.append)  # fmt: skip
    assert 4 <= len(script.sent) <= 7 and len(sleeps) == len(script.sent) - 1


def test_throttling_is_retried_but_other_4xx_are_not(identity) -> None:
    throttled = Response(400, {}, b'{"__type":"ThrottlingException","message":"slow down"}')
    script = Script(throttled, Response(201, {}, GOOD_BODY))
    call(identity, script)
    assert len(script.sent) == 2
    denied = Response(
        403,
        {"x-amzn-errortype": "AccessDeniedException:http://internal.amazon.com/"},
        b'{"message":"Untrusted signing certificate"}',
    )
    script = Script(denied, Response(201, {}, GOOD_BODY))
    with pytest.raises(ServiceError) as caught:
        call(identity, script)
    assert str(caught.value) == "AccessDeniedException: Untrusted signing certificate"
    assert len(script.sent) == 1


def test_success_without_credentials_is_an_error(identity) -> None:
    with pytest.raises(ServiceError, match="without usable credentials"):
        call(identity, Script(Response(201, {}, b'{"credentialSet":[]}')))


def test_network_error_after_last_attempt(identity) -> None:
    with pytest.raises(NetworkError, match="reset"):
        call(identity, Script(*[NetworkError("reset")] * 3))
