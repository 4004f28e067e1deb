"""Certificate revocation lists, applied as IAM Roles Anywhere applies imported CRLs.

    >>> import tempfile
    >>> from cryptography.hazmat.primitives.serialization import Encoding
    >>> from hwsigner.devpki import DevPki, new_key
    >>> pki = DevPki.create(tempfile.mkdtemp())
    >>> leaf = pki.issue(new_key("ec-p256").public_key(), "device")
    >>> crl = pki.directory / "issuing-ca.crl"
    >>> _ = crl.write_bytes(pki.revoke([leaf]).public_bytes(Encoding.PEM))
    >>> Revocations.load([str(crl)]).check(leaf, [pki.issuing[0]], [pki.root[0]])
    Traceback (most recent call last):
    hwsigner.emulator.params.Rejection: AccessDeniedException: Certificate revoked

A CRL (PEM or DER, like the service's ImportCrl) applies to every certificate its issuer issued:
the leaf, and each intermediate on the way. A CRL counts only when its signature verifies with
the key of the CA that issued the certificate in question, so a list forged under a CA's name
revokes nothing. A ``--crl FILE`` applies whatever trust anchor the chain ends at; an entry of
the model file's ``crls`` (``model.Crl``) to the trust anchor it names. Both end here: ``decide``
checks the ``Revocations`` of the trust anchor a request names after the chain reaches it and
before the profile, as the service does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from .._safe import read_user_file
from ..errors import ConfigError
from ..x509certs import issued_by
from .params import access_denied

log = logging.getLogger("hwsigner")

REVOKED = "Certificate revoked"
PEM_CRL = b"-----BEGIN X509 CRL-----"


def parse_crls(data: bytes, source: str) -> list[x509.CertificateRevocationList]:
    """Every CRL of a PEM file (one or more), or the one of a DER file."""
    try:
        if PEM_CRL not in data:
            return [x509.load_der_x509_crl(data)]
        blocks = data.split(PEM_CRL)[1:]
        return [x509.load_pem_x509_crl(PEM_CRL + block) for block in blocks]
    except ValueError:
        raise ConfigError(
            f"{source} holds no readable X.509 CRL", hint="give --crl a PEM or DER CRL file"
        ) from None


@dataclass(frozen=True, slots=True)
class Revocations:
    """The CRLs the emulator applies."""

    crls: tuple[x509.CertificateRevocationList, ...] = ()

    @classmethod
    def load(cls, paths: Sequence[str]) -> Revocations:
        found: list[x509.CertificateRevocationList] = []
        for path in paths:
            found += parse_crls(read_user_file(path, "CRL", "--crl"), path)
        return cls(tuple(found))

    def check(
        self,
        leaf: x509.Certificate,
        sent: Sequence[x509.Certificate],
        anchors: Sequence[x509.Certificate],
    ) -> None:
        """Reject when a CRL from its issuer lists the leaf or an intermediate of its chain."""
        if not self.crls:
            return
        issuers = [*sent, *anchors]
        current: x509.Certificate | None = leaf
        seen: list[x509.Certificate] = []
        while current is not None and current not in seen:
            seen.append(current)
            issuer = next((cert for cert in issuers if issued_by(current, cert)), None)
            if issuer is None:
                return
            if self.revoked(current, issuer):
                raise access_denied(
                    REVOKED,
                    f"serial {current.serial_number} ({current.subject.rfc4514_string()[:200]}) "
                    f"is revoked by the CRL of {issuer.subject.rfc4514_string()[:200]}",
                )
            current = issuer if issuer not in anchors else None

    def revoked(self, cert: x509.Certificate, issuer: x509.Certificate) -> bool:
        for crl in self.crls:
            if crl.issuer != issuer.subject:
                continue
            if not signed_by(crl, issuer):
                log.debug("ignoring a CRL of %s: its signature does not verify", crl.issuer)
                continue
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                log.debug("serial %d is revoked by %s", cert.serial_number, crl.issuer)
                return True
        return False


def signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except TypeError:  # a key type that cannot sign CRLs
        return False


__all__ = ["PEM_CRL", "REVOKED", "Revocations", "parse_crls"]
