"""Renewal: a new certificate for the key the old one was issued to, checked, then installed.

    >>> import tempfile
    >>> from datetime import datetime, timezone
    >>> from hwsigner import load_identity
    >>> from hwsigner.devpki import DevPki, pem
    >>> from hwsigner.provision.csr import load_csr
    >>> pki, now = DevPki.create(tempfile.mkdtemp()), datetime.now(timezone.utc)
    >>> cert, key_file = pki.new_leaf("ec-p256", "device")
    >>> identity, key = load_identity(str(cert), str(key_file))
    >>> request = renewal_request(identity.certificate, key)     # signed by the same key
    >>> answer = pem(pki.issue(load_csr(request.pem, "the request").public_key(), "device"))
    >>> issued = read_issued(answer, "the CA")                   # what a CA answered
    >>> check_issued(issued, key.public_key, now)
    >>> install_file(str(cert), issued)
    >>> sorted(path.name for path in pki.directory.glob("device.pem*"))
    ['device.pem', 'device.pem.previous']

The key never moves: the request is signed inside the device (``csr.build_csr``) with the
current certificate's subject and alternative names. What the CA answers is installed only when
its leaf holds the key's public key, keeps Roles Anywhere's leaf rules and its chain links up.
A certificate file is replaced atomically (write, fsync, rename; the old file's mode and owner
kept) and the old one is kept beside it as ``CERT.previous``. Getting the certificate issued is
``renew_ca``'s part; on a PKCS#11 token the ``import-cert`` path installs it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .._safe import read_user_file
from .._safe import replace_file as safe_replace
from ..errors import CertificateError, ConfigError
from ..keys import KeyBackend, PublicKey
from ..x509certs import describe, extension, is_ca, is_self_signed, spki
from ..x509rules import LEAF_RULES, VALID_YET, broken_rules, walk_chain
from .csr import SigningRequest, build_csr

UNCHANGED = "nothing was changed"
PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
# What Roles Anywhere asks of the new leaf; not-yet-valid is allowed (a CA clock a little ahead:
# the running services keep the old certificate until the new one is valid).
ISSUED_RULES = tuple(rule for rule in LEAF_RULES if rule is not VALID_YET)


@dataclass(frozen=True, slots=True)
class Issued:
    """The new leaf and the CA certificates above it, nearest first."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        """The chain without its root: what is sent with the leaf and stored beside it."""
        return tuple(cert for cert in self.chain if not is_self_signed(cert))


def days_left(cert: x509.Certificate, now: datetime) -> float:
    """Days until the certificate expires (negative once it has)."""
    return (cert.not_valid_after_utc - now).total_seconds() / 86400


def whole_days_left(cert: x509.Certificate, now: datetime) -> int:
    return int(days_left(cert, now) // 1)


def is_due(cert: x509.Certificate, now: datetime, within_days: int) -> bool:
    """Due when the certificate has ``within_days`` days or fewer to live."""
    return days_left(cert, now) <= within_days


def renewal_request(
    current: x509.Certificate, key: KeyBackend, subject: x509.Name | None = None
) -> SigningRequest:
    """A request signed by ``key`` for the current subject (or ``subject``) and SANs."""
    names = extension(current, x509.SubjectAlternativeName)
    sans = tuple(names) if names is not None else ()
    return build_csr(key, subject or current.subject, sans)


def read_issued(data: bytes, source: str) -> Issued:
    """The leaf (first) and its chain from PEM text; anything else is refused."""
    if PEM_CERTIFICATE not in data:
        raise CertificateError(
            f"{source} returned no PEM certificate; {UNCHANGED}",
            hint="the CA must print the certificate (PEM), optionally followed by its chain",
        )
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertificateError(
            f"{source} returned a PEM certificate that cannot be read; {UNCHANGED}",
            hint="the CA must print the certificate (PEM), optionally followed by its chain",
        ) from None
    leaf, others = found[0], found[1:]
    path = walk_chain(leaf, others)
    strays = [*path.unused, *(cert for cert in path.links if not is_ca(cert))]
    if strays:
        raise CertificateError(
            f"{source} returned {describe(strays[0])}, which is not a CA above "
            f"{describe(leaf)}; {UNCHANGED}",
            hint="the certificate comes first, then its issuing CA and the CAs above it",
        )
    return Issued(leaf, path.links)


def check_issued(issued: Issued, public_key: PublicKey, now: datetime) -> None:
    """The new leaf must be for this key, still valid, and acceptable to Roles Anywhere."""
    leaf = issued.certificate
    if spki(leaf.public_key()) != spki(public_key):
        raise CertificateError(
            f"the CA returned a certificate for another key ({describe(leaf)}, serial "
            f"{leaf.serial_number}); {UNCHANGED}",
            hint="the CA must issue for the request's public key (check the --exec command)",
        )
    problems = broken_rules(leaf, now, ISSUED_RULES)
    if problems:
        raise CertificateError(
            f"Roles Anywhere would refuse the new certificate: {problems[0].message}; " + UNCHANGED,
            hint=problems[0].fix,
        )


def check_replaceable(path: str) -> None:
    """Refuse, before any CA is asked, a certificate file renewal cannot rewrite."""
    from .._safe import is_fd_path

    if is_fd_path(path):
        raise ConfigError(
            f"{path} is a file descriptor; renew replaces a certificate file in place",
            hint="give --certificate the path of the certificate file",
        )
    data = read_user_file(path, "certificate", "--certificate")
    if b"PRIVATE KEY-----" in data:
        raise ConfigError(
            f"{path} holds a private key as well as the certificate; renew rewrites certificate "
            "files only",
            hint="keep the key in its own file (--private-key), the certificate in --certificate",
        )
    if PEM_CERTIFICATE not in data:
        try:
            x509.load_der_x509_certificate(data)
        except ValueError:
            raise ConfigError(
                f"{path} is not a PEM or DER certificate file (PKCS#12 cannot be renewed in place)",
                hint="keep the certificate in a PEM file and the key in --private-key",
            ) from None


def install_file(path: str, issued: Issued) -> None:
    """Keep the old file as ``PATH.previous``, then put the new certificate in its place.

    A DER file stays DER (the leaf alone). A PEM file gets the leaf, then the CA's
    intermediates, or, when the CA sent none, the further certificates the old file held.
    """
    old = read_user_file(path, "certificate", "--certificate")
    status = os.stat(path)
    leaf = issued.certificate
    if PEM_CERTIFICATE not in old:
        new = leaf.public_bytes(Encoding.DER)
    else:
        chain = issued.intermediates or tuple(x509.load_pem_x509_certificates(old)[1:])
        new = b"".join(cert.public_bytes(Encoding.PEM) for cert in (leaf, *chain))
    replace_file(path + ".previous", old, status)
    replace_file(path, new, status)


def replace_file(path: str, data: bytes, like: os.stat_result) -> None:
    """``_safe.replace_file`` with ``like``'s mode (and owner, as root)."""
    try:
        safe_replace(path, data, like.st_mode & 0o7777, (like.st_uid, like.st_gid))
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}; {UNCHANGED}") from None


__all__ = [
    "Issued",
    "check_issued",
    "check_replaceable",
    "install_file",
    "is_due",
    "read_issued",
    "renewal_request",
    "whole_days_left",
]
