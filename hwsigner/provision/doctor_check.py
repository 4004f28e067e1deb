"""What ``doctor`` checks and what it reports: the setup, one ``Check`` per step.

    >>> print(Check("validity", "fail", "the certificate has expired", "renew it").line())
    FAIL  validity: the certificate has expired -- fix: renew it
    >>> print(failing("rules", [("it is v1", "reissue it"), ("it is a CA", "reissue it")]).line())
    FAIL  rules: 2 problems
          - it is v1 -- fix: reissue it
          - it is a CA -- fix: reissue it

Both halves of ``doctor`` (``doctor`` for the certificate and key, ``doctor_service`` for the
ARNs and the endpoint) build on this module, so neither imports the other's types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509

from ..errors import HwSignerError
from ..keys import KeyBackend, KeyOptions

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


__all__ = ["Check", "Opened", "Setup", "Status", "failed", "failing"]
