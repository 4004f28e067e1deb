"""The emulator's trust anchors, and the service's certificate rules applied as it applies them.

    >>> import tempfile
    >>> from datetime import datetime, timezone
    >>> from hwsigner.devpki import DevPki, new_key
    >>> pki, now = DevPki.create(tempfile.mkdtemp()), datetime.now(timezone.utc)
    >>> leaf = pki.issue(new_key("ec-p256").public_key(), "device")
    >>> anchors = TrustAnchors.load([str(pki.root_cert)])
    >>> check_leaf(leaf, now)                              # the leaf rules hold: no Rejection
    >>> anchors.verify_chain(leaf, [pki.issuing[0]], now).subject.rfc4514_string()
    'CN=hwsigner dev root CA,O=hwsigner dev'
    >>> anchors.verify_chain(leaf, [], now)                # the issuing CA was not sent
    Traceback (most recent call last):
    hwsigner.emulator.params.Rejection: AccessDeniedException: Untrusted signing certificate

The rules and the chain walk are ``hwsigner.x509rules``, shared with ``doctor``; here the first
broken rule becomes the service's refusal (403 ``AccessDeniedException``). A broken chain
answers the service's generic ``Untrusted signing certificate``; the rule goes to the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from ..errors import CertificateError
from ..x509certs import is_ca, read_certificates
from ..x509rules import UNTRUSTED, broken_rules, chain_broken, walk_chain
from .params import access_denied, untrusted


@dataclass(frozen=True, slots=True)
class TrustAnchors:
    """The CA certificates the emulator trusts, like the service's trust anchors."""

    certificates: tuple[x509.Certificate, ...]

    @classmethod
    def load(cls, paths: Sequence[str]) -> TrustAnchors:
        """Read PEM bundles or DER files; every certificate in them must be a CA."""
        found: list[x509.Certificate] = []
        for path in paths:
            for cert in read_certificates(path, "--trust-anchor"):
                if not is_ca(cert):
                    raise CertificateError(
                        f"{path}: {cert.subject.rfc4514_string()} is not a CA certificate",
                        hint="give --trust-anchor a root or intermediate CA certificate",
                    )
                found.append(cert)
        return cls(tuple(found))

    def verify_chain(
        self, leaf: x509.Certificate, sent: Sequence[x509.Certificate], now: datetime
    ) -> x509.Certificate:
        """Walk from ``leaf`` through ``sent`` to an anchor; return the anchor, else reject."""
        path = walk_chain(leaf, sent, self.certificates)
        for broken in chain_broken(path, now):
            if broken.rule is UNTRUSTED:
                last = path.links[-1] if path.links else leaf
                subject = last.subject.rfc4514_string()[:200]
                raise untrusted(f"no trust anchor or sent intermediate issued {subject}")
            raise untrusted(broken.message)
        assert path.anchor is not None  # chain_broken names a chain that reaches none
        return path.anchor


def check_leaf(cert: x509.Certificate, now: datetime) -> None:
    """The signing certificate's rules, in the service's order: the first broken one refuses."""
    for broken in broken_rules(cert, now):
        raise access_denied(broken.message)


__all__ = ["TrustAnchors", "check_leaf"]
