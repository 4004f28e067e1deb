"""``serve``'s health and metrics: ``/healthz``, ``/readyz`` and ``/metrics``.

    >>> health = Health([("build", keeper)], certificate_expiry)  # doctest: +SKIP
    >>> health.readyz().status                                     # doctest: +SKIP
    503

- ``/healthz``: 200 while the process answers.
- ``/readyz``: 200 while every role holds credentials it may hand out, else 503 naming the
  roles that do not.
- ``/metrics``: the Prometheus text format (version 0.0.4): per role the seconds until its
  credentials expire, its CreateSession results and the latency of the latest one; the seconds
  until the certificate's notAfter.

Role names, counts and seconds only: no key id, secret, token or certificate detail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from ..credentials import utcnow
from .httpd import Answer, text
from .keeper import CredentialKeeper

METRICS = b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
HELP = {
    "hwsigner_credentials_expiry_seconds": (
        "gauge",
        "Seconds until the role's credentials expire.",
    ),
    "hwsigner_refresh_total": ("counter", "CreateSession calls of the role, by result."),
    "hwsigner_create_session_seconds": ("gauge", "Duration of the role's latest CreateSession."),
    "hwsigner_certificate_expiry_seconds": ("gauge", "Seconds until the certificate's notAfter."),
}


class Health:
    """The three answers, from the keepers of the served roles (in the order served)."""

    def __init__(
        self,
        roles: Sequence[tuple[str, CredentialKeeper]],
        certificate_expiry: Callable[[], datetime | None] = lambda: None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.roles = roles
        self.certificate_expiry = certificate_expiry
        self.clock = clock

    def not_ready(self) -> list[str]:
        """The roles without credentials they may hand out."""
        return [name for name, keeper in self.roles if keeper.usable() is None]

    def healthz(self) -> Answer:
        return text(200, "ok\n")

    def readyz(self) -> Answer:
        failing = self.not_ready()
        if failing:
            return text(503, f"not ready: {', '.join(failing)}\n")
        return text(200, "ready\n")

    def metrics(self) -> Answer:
        now = self.clock()
        samples: dict[str, list[str]] = {name: [] for name in HELP}
        for role, keeper in self.roles:
            label = f'role="{escape(role)}"'
            current = keeper.current
            if current is not None:
                left = (current.expiration - now).total_seconds()
                samples["hwsigner_credentials_expiry_seconds"].append(f"{{{label}}} {left:.3f}")
            for result, count in keeper.refreshes.items():
                sample = f'{{{label},result="{result}"}} {count}'
                samples["hwsigner_refresh_total"].append(sample)
            if keeper.fetch_seconds is not None:
                sample = f"{{{label}}} {keeper.fetch_seconds:.6f}"
                samples["hwsigner_create_session_seconds"].append(sample)
        not_after = self.certificate_expiry()
        if not_after is not None:
            left = (not_after - now).total_seconds()
            samples["hwsigner_certificate_expiry_seconds"].append(f" {left:.3f}")
        lines = []
        for name, (kind, help_text) in HELP.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            lines += [name + sample for sample in samples[name]]
        return Answer(200, ("\n".join(lines) + "\n").encode(), METRICS)


def escape(value: str) -> str:
    """A label value as the text format writes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


__all__ = ["Health"]
