"""The service side of ``doctor``: the ARNs, and whether the endpoint answers.

    >>> from hwsigner.provision.doctor_check import Setup
    >>> for check in service_checks(Setup(), None):
    ...     print(check.line())
    SKIP  ARNs: none given (pass --trust-anchor-arn, --profile-arn and --role-arn to check them)
    SKIP  endpoint: needs the ARNs

Without ``online`` the endpoint is only asked for ``/``: any HTTP answer means it is reachable
(TLS, proxy and DNS work). With ``online`` a real CreateSession is signed and sent, and the
credentials it returns are dropped unseen.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..arns import parse_arn
from ..errors import HwSignerError
from ..identity import Identity
from ..rolesanywhere import Target, resolve
from ..rolesanywhere import request_credentials as create_session
from ..settings import Settings as SessionParams
from ..sigv4x509 import Request
from ..transport import HttpTransport
from ..x509rules import chain_to_send
from .doctor_check import Check, Opened, Setup

FLAGS = ("--trust-anchor-arn", "--profile-arn", "--role-arn")


def service_checks(
    setup: Setup,
    opened: Opened | None,
    *,
    transport: Callable[..., Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Check]:
    env = os.environ if env is None else env
    given = (setup.trust_anchor_arn, setup.profile_arn, setup.role_arn)
    if not any(given):
        hint = "pass --trust-anchor-arn, --profile-arn and --role-arn to check them"
        yield Check("ARNs", "skip", f"none given ({hint})")
        yield Check("endpoint", "skip", "needs the ARNs")
        return
    missing = [flag for flag, value in zip(FLAGS, given, strict=True) if not value]
    if missing:
        yield Check("ARNs", "fail", f"{', '.join(missing)} not given", f"pass {missing[0]}")
        yield Check("endpoint", "skip", "needs the ARNs")
        return
    params = SessionParams(
        trust_anchor_arn=setup.trust_anchor_arn or "",
        profile_arn=setup.profile_arn or "",
        role_arn=setup.role_arn or "",
        session_duration=setup.session_duration,
        role_session_name=setup.role_session_name,
        region=setup.region,
        endpoint=setup.endpoint,
    )
    try:
        target = resolve(params, env)
    except HwSignerError as exc:
        yield Check("ARNs", "fail", str(exc), exc.hint)
        yield Check("endpoint", "skip", "needs the ARNs")
        return
    yield arn_check(params, target)
    transport = transport or HttpTransport.from_env(env)
    if setup.online:
        yield online_check(params, opened, transport, env)
    else:
        yield reachability_check(target, transport)


def arn_check(params: SessionParams, target: Target) -> Check:
    anchor = parse_arn(params.trust_anchor_arn, "trust-anchor")
    accounts = {
        anchor.account,
        parse_arn(params.profile_arn, "profile").account,
        parse_arn(params.role_arn, "role").account,
    }
    detail = f"they parse; region {target.region}"
    if len(accounts) > 1:
        return Check(
            "ARNs", "warn", f"{detail}, but they name {len(accounts)} accounts",
            "the trust anchor, profile and role are normally in one account",
        )  # fmt: skip
    return Check("ARNs", "pass", f"{detail}, account {anchor.account}")


def base_url(target: Target) -> str:
    return target.url.split("/sessions?", 1)[0]


def reachability_check(target: Target, transport: Callable[[Request], Any]) -> Check:
    url = base_url(target) + "/"
    try:
        response = transport(Request("GET", url, (), b""))
    except HwSignerError as exc:
        return Check("endpoint", "fail", str(exc), exc.hint)
    return Check(
        "endpoint", "pass",
        f"{base_url(target)} answers (HTTP {response.status}); --online would call CreateSession",
    )  # fmt: skip


def online_check(
    params: SessionParams,
    opened: Opened | None,
    transport: Callable[[Request], Any],
    env: Mapping[str, str],
) -> Check:
    if opened is None:
        return Check("CreateSession", "skip", "needs the certificate and the key")
    try:
        identity = Identity(opened.certificate, chain_to_send(opened.certificate, opened.chain))
        credentials = create_session(params, identity, opened.key, transport=transport, env=env)
    except HwSignerError as exc:
        return Check("CreateSession", "fail", str(exc), exc.hint)
    return Check(
        "CreateSession",
        "pass",
        "granted credentials that expire at "
        + credentials.expiration.strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
