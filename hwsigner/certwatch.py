"""Live pick-up: the certificate a long-running process signs with, looked at again before
each CreateSession, so a renewed certificate is used without a restart.

    >>> from hwsigner.certwatch import CertificateWatch, WatchedFiles
    >>> files = WatchedFiles.of("device.pem", "chain.pem")   # before the files are read
    >>> opened = open_identity("device.pem", "device.key", "chain.pem")  # doctest: +SKIP
    >>> watch = CertificateWatch.start(opened, files)                 # doctest: +SKIP
    >>> watch.current().certificate.serial_number    # the renewed one, once valid  # doctest: +SKIP

Where the certificate came from is where it is looked for again:

- a file (PEM, DER, combo PEM, PKCS#12) and the ``--intermediates`` file: one ``stat`` per
  file and CreateSession (device, inode, size, mtime); the content is read only when that
  changed, a PKCS#12 file with the password that opened it at start (never asked again);
- a ``pkcs11:`` certificate: the key's certificates are listed again through the token session
  already open (``KeyBackend.find_certificates``; no new login).

A certificate found there is used once it is valid (notBefore <= now <= notAfter) and holds the
key's public key; of several, the one that expires last. One not yet valid is looked at again
next time; one for another key is never used. Each switch is one log line (subject, serial,
notAfter), each certificate passed over one line too, once; nothing secret is logged.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ._log import INFO, WARNING, debug, log
from ._safe import REFERENCE_SCHEMES, is_fd_path, one_line, read_user_file
from .errors import HwSignerError
from .identity import Identity, OpenedIdentity
from .keys import KeyBackend
from .x509certs import is_der_certificate, parse_certificates, public_key_or_none, spki
from .x509rules import chain_to_send

Stamp = tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns
# The first CreateSession within this many seconds of opening signs with what opening read (a
# change meanwhile is seen by the next look: the file stamps were taken before reading).
JUST_READ = 1.0


def stamp(path: str) -> Stamp | None:
    """What tells a changed file from an unchanged one without reading it; None if absent."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


class WatchedFile:
    """A certificate file: ``changed`` costs one ``stat``; ``certificates`` reads it when due."""

    def __init__(self, path: str, flag: str) -> None:
        self.path = path
        self.flag = flag
        self.password: str | None = None  # what opened it as PKCS#12 at start
        self._stamp = stamp(path)  # taken before the first read: a change in between is seen
        self._certificates: tuple[x509.Certificate, ...] | None = None

    def changed(self) -> bool:
        return stamp(self.path) != self._stamp

    def certificates(self) -> tuple[x509.Certificate, ...]:
        """What the file holds now (the leaf first); read only when it changed or never was."""
        if self._certificates is None or self.changed():
            seen = stamp(self.path)  # before reading: a write during the read shows next time
            self._certificates = self._read()
            self._stamp = seen
        return self._certificates

    def _read(self) -> tuple[x509.Certificate, ...]:
        data = read_user_file(self.path, "certificate", self.flag)
        if b"-----BEGIN" not in data and not is_der_certificate(data):
            from .keys.file import pkcs12_certificates

            return pkcs12_certificates(data, self.path, self.password)
        return parse_certificates(data, self.path, self.flag)


@dataclass(frozen=True, slots=True)
class WatchedFiles:
    """The certificate file and the intermediates file, when they are files that can change,
    and whether the certificate is the key's own on a token (a ``pkcs11:`` URI, or none)."""

    certificate: WatchedFile | None
    intermediates: WatchedFile | None
    on_token: bool = False

    @classmethod
    def of(cls, certificate: object, intermediates: object) -> WatchedFiles:
        """Stamp the named files now, before they are first read. Only a path is watched: not
        ``env:``, ``fd:`` or ``/dev/fd/N`` (read once), nor bytes or certificates from Python."""

        def watched(path: object, flag: str) -> WatchedFile | None:
            if not isinstance(path, str) or not path or is_fd_path(path):
                return None
            if path.startswith(("pkcs11:", *REFERENCE_SCHEMES)):
                return None
            return WatchedFile(path, flag)

        on_token = certificate is None or (
            isinstance(certificate, str) and certificate.startswith("pkcs11:")
        )
        return cls(
            watched(certificate, "--certificate"),
            watched(intermediates, "--intermediates"),
            on_token,
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    """A certificate found at the source, the chain it would be sent with, and where it is."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    where: str


Look = Callable[[], "tuple[Candidate, ...] | None"]  # None: nothing changed


class CertificateWatch:
    """The identity to sign with now; ``start`` picks how to look for a renewed one."""

    def __init__(self, identity: Identity, key: KeyBackend, look: Look | None = None) -> None:
        self._identity = identity
        self._look = look
        self._key_spki = spki(key.public_key)
        self._candidates: tuple[Candidate, ...] = ()
        self._told: set[tuple[bytes, str]] = set()
        self._lock = threading.Lock()
        self._read_at: float | None = time.monotonic()  # when the source was read to open

    @classmethod
    def start(cls, opened: OpenedIdentity, files: WatchedFiles) -> CertificateWatch:
        """Watch the certificate file, else the token's certificates, else nothing."""
        identity, key = opened.identity, opened.key
        certificate, intermediates = files.certificate, files.intermediates
        if certificate is not None:
            certificate.password = opened.password
            return cls(identity, key, lambda: file_candidates(certificate, intermediates))
        if files.on_token:
            return cls(identity, key, TokenLook(key, intermediates))
        return cls(identity, key)

    def current(self, now: datetime | None = None) -> Identity:
        """The identity the next CreateSession is signed with (a renewed one once usable)."""
        if self._look is None:
            return self._identity
        with self._lock:
            read_at, self._read_at = self._read_at, None
            if read_at is not None and time.monotonic() - read_at < JUST_READ:
                return self._identity  # a credential-process lists a token's certificates once
            try:
                found = self._look()
            except HwSignerError as exc:
                self._tell(b"", f"cannot look for a renewed certificate: {exc}", INFO)
                found = None
            if found is not None:
                self._candidates = tuple(c for c in found if self._holds_the_key(c))
            self._identity = self._pick(now or datetime.now(timezone.utc))
            return self._identity

    def _pick(self, now: datetime) -> Identity:
        current = self._identity
        usable = [c for c in self._candidates if self._usable(c, now)]
        if not usable:
            return current
        best = max(usable, key=lambda c: c.certificate.not_valid_after_utc)
        if (best.certificate, best.chain) == (current.certificate, current.chain):
            return current
        if best.certificate == current.certificate:
            debug("certificate chain from %s: %d certificate(s)", best.where, len(best.chain))
        else:
            log(
                INFO,
                "certificate renewed: now signing with %s, serial %d, notAfter %s (from %s)",
                one_line(best.certificate.subject.rfc4514_string()),
                best.certificate.serial_number,
                best.certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                best.where,
            )
        return Identity(best.certificate, best.chain)

    def _holds_the_key(self, candidate: Candidate) -> bool:
        """Whether the certificate holds the key's public key (checked once per change)."""
        public_key = public_key_or_none(candidate.certificate)
        if public_key is not None and spki(public_key) == self._key_spki:
            return True
        what = f"from {candidate.where} is not for this key"
        self._tell(candidate.certificate, what, WARNING)
        return False

    def _usable(self, candidate: Candidate, now: datetime) -> bool:
        cert = candidate.certificate
        if now < cert.not_valid_before_utc:
            self._tell(cert, f"is not valid before {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}")
            return False
        if now > cert.not_valid_after_utc and cert != self._identity.certificate:
            self._tell(cert, f"expired at {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")
            return False
        return True

    def _tell(self, about: x509.Certificate | bytes, what: str, level: int = INFO) -> None:
        """One log line per certificate and reason, however often it is seen."""
        der = about if isinstance(about, bytes) else about.fingerprint(hashes.SHA256())
        if (der, what) in self._told:
            return
        self._told.add((der, what))
        serial = self._identity.certificate.serial_number
        if isinstance(about, bytes):
            log(level, "%s; still signing with serial %d", one_line(what), serial)
        else:
            log(level, "certificate serial %d %s; still signing with serial %d",
                about.serial_number, one_line(what), serial)  # fmt: skip


def file_candidates(
    certificate: WatchedFile, intermediates: WatchedFile | None
) -> tuple[Candidate, ...] | None:
    """The certificate file's leaf with its chain, when either file changed."""
    if not certificate.changed() and (intermediates is None or not intermediates.changed()):
        return None
    found = certificate.certificates()
    chain = intermediates.certificates() if intermediates is not None else found[1:]
    return (candidate(found[0], chain, f"file {one_line(certificate.path)}"),)


class TokenLook:
    """The token's certificates for the key, each with its chain (``--intermediates`` wins);
    None while the backend finds what it found last time."""

    def __init__(self, key: KeyBackend, intermediates: WatchedFile | None) -> None:
        self.key = key
        self.intermediates = intermediates
        self._last: object = None

    def __call__(self) -> tuple[Candidate, ...] | None:
        found = self.key.find_certificates()
        intermediates = self.intermediates
        if found is None or (
            found is self._last and not (intermediates and intermediates.changed())
        ):
            return None  # no certificates on this backend, or the same as last time
        self._last = found
        chain = intermediates.certificates() if intermediates is not None else None
        where = f"token ({self.key.description})"
        return tuple(
            candidate(leaf, chain if chain is not None else own, where) for leaf, own in found
        )


def candidate(leaf: x509.Certificate, chain: tuple[x509.Certificate, ...], where: str) -> Candidate:
    return Candidate(leaf, chain_to_send(leaf, chain), where)


__all__ = [
    "Candidate",
    "CertificateWatch",
    "TokenLook",
    "WatchedFile",
    "WatchedFiles",
    "stamp",
]
