"""What ``doctor`` reports (the ``Setup`` it checks, one ``Check`` per step), and its service
side: the ARNs, and whether the endpoint answers.

    >>> for check in service_checks(Setup(), None):
    ...     print(check.line())
    SKIP  ARNs: none given (pass --trust-anchor-arn, --profile-arn and --role-arn to check them)
    SKIP  endpoint: needs the ARNs
    >>> print(failing("rules", [("it is v1", "reissue it"), ("it is a CA", "reissue it")]).line())
    FAIL  rules: 2 problems
          - it is v1 -- fix: reissue it
          - it is a CA -- fix: reissue it

Without ``online`` the endpoint is only asked for ``/``: any HTTP answer means it is reachable
(TLS, proxy and DNS work). With ``online`` a real CreateSession is signed and sent, and the
credentials it returns are dropped unseen. ``doctor`` (the certificate and key checks) builds on
this module; this module imports nothing of it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography import x509

from ..arns import parse_arn
from ..errors import HwSignerError
from ..identity import Identity
from ..keys import KeyBackend, KeyOptions
from ..rolesanywhere import Target, resolve
from ..rolesanywhere import request_credentials as create_session
from ..settings import Settings as SessionParams
from ..sigv4x509 import Request
from ..transport import HttpTransport
from ..x509rules import chain_to_send

Status = Literal["pass", "warn", "fail", "skip"]


@dataclass(frozen=True, slots=True)
class Check:
    """The result of one check: one line for the user, a fix when it failed, and one more line
    per problem when it found several (each with its own fix)."""

    name: str
    status: Status
    detail: str
    fix: str | None = None
    more: tuple[str, ...] = ()

    def line(self) -> str:
        fix = f" -- fix: {self.fix}" if self.fix and self.status in ("fail", "warn") else ""
        first = f"{self.status.upper():<5} {self.name}: {self.detail}{fix}"
        return "\n".join([first, *(f"      - {item}" for item in self.more)])


def failing(name: str, problems: Sequence[tuple[str, str]]) -> Check:
    """A failed check naming every problem with its fix: ``problems`` holds (what, fix) pairs."""
    if len(problems) == 1:
        ((what, fix),) = problems
        return Check(name, "fail", what, fix)
    more = tuple(f"{what} -- fix: {fix}" for what, fix in problems)
    return Check(name, "fail", f"{len(problems)} problems", more=more)


def failed(name: str, exc: HwSignerError) -> Check:
    return Check(name, "fail", str(exc), exc.hint)


@dataclass(frozen=True, slots=True)
class Setup:
    """The credential-process flags, plus what only doctor takes (``trust_anchors``, ``online``)."""

    certificate: str | None = None
    private_key: str | None = None
    intermediates: str | None = None
    options: KeyOptions = field(default_factory=KeyOptions)
    trust_anchor_arn: str | None = None
    profile_arn: str | None = None
    role_arn: str | None = None
    session_duration: int = 3600
    role_session_name: str | None = None
    region: str | None = None
    endpoint: str | None = None
    trust_anchors: str | None = None  # PEM file of the trust anchor's CA certificate(s)
    online: bool = False


@dataclass(frozen=True, slots=True)
class Opened:
    """What the first checks found: the leaf, the intermediates to send, the open key."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    key: KeyBackend


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


__all__ = [
    "Check", "Opened", "Setup", "Status", "arn_check", "failed", "failing", "online_check",
    "reachability_check", "service_checks",
]  # fmt: skip
