"""Keys in PKCS#11 tokens (SoftHSM, YubiKey PIV, HSMs, smart cards), named by RFC 7512 URIs.

    >>> from hwsigner.keys import KeyOptions
    >>> from hwsigner.keys.pkcs11 import open_key
    >>> key = open_key("pkcs11:token=dev;object=ra?pin-source=file:/run/pin", KeyOptions(),
    ...                certificate_ref="pkcs11:token=dev;object=ra")  # doctest: +SKIP
    >>> key.certificate.subject, len(key.chain)                       # doctest: +SKIP
    >>> key.sign(b"message")                                          # doctest: +SKIP

One logged-in session per token serves every signature of the process. EC keys sign a SHA-2
digest made here with ``CKM_ECDSA`` (raw r||s, returned as DER); RSA keys use
``CKM_SHA256_RSA_PKCS`` (or its SHA-384/512 siblings), else ``CKM_RSA_PKCS`` over a DigestInfo.
Keys with ``CKA_ALWAYS_AUTHENTICATE`` (YubiKey slot 9c) get a context-specific login before
each signature: the user PIN under ``--reuse-pin``, else a PIN asked once on the terminal.

Inside: ``uri`` (RFC 7512), ``module`` (modules, tokens), ``session`` (the one login path, PIN
sources), ``objects`` (what is on a token, the chain), ``select`` (the one certificate and key
URIs name), ``writable`` (keygen, certificate install).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import KeyType, Mechanism
from pkcs11 import exceptions as p11

from ...errors import KeySourceError
from ...x509certs import spki
from ..backend import CertificateAndChain, Digest, KeyBackend, KeyOptions, PublicKey, ask_secret
from .module import Module, one_token
from .objects import (
    TokenCertificate,
    TokenKey,
    certificate_key,
    certificate_values,
    find_private_keys,
    key_certificates,
    token_chain,
)
from .select import one_certificate, search_certificates, select_key
from .session import COUNTERS, PIN_ERRORS, TokenSession, pin_refused
from .uri import Pkcs11Uri
from .writable import generate_key, install_certificate

log = logging.getLogger("hwsigner")

COMBINED_RSA = {
    "SHA256": Mechanism.SHA256_RSA_PKCS,
    "SHA384": Mechanism.SHA384_RSA_PKCS,
    "SHA512": Mechanism.SHA512_RSA_PKCS,
}
# RFC 8017 section 9.2, note 1: the DER DigestInfo prefix of each hash.
DIGEST_INFO = {
    "SHA256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "SHA384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "SHA512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


@dataclass(frozen=True, slots=True)
class SignSettings:
    """How a key signs: the token's mechanisms, and where a per-signature PIN comes from."""

    mechanisms: frozenset[int]
    reuse_pin: bool = False
    pin_uri: Pkcs11Uri = field(default_factory=Pkcs11Uri)  # the user PIN, if a login is due


class Pkcs11Key(KeyBackend):
    """A private key on a token; ``open`` finds it (and its certificate and chain)."""

    def __init__(
        self,
        token: TokenSession,
        key: TokenKey,
        public_key: PublicKey,
        settings: SignSettings,
        *,
        certificate: x509.Certificate | None = None,
        chain: tuple[x509.Certificate, ...] = (),
        certificate_uri: Pkcs11Uri | None = None,
    ) -> None:
        self.token = token
        self.key = key
        self.settings = settings
        self.certificate = certificate
        self.chain = chain
        self.certificate_uri = certificate_uri  # how the certificate was named, if by a URI
        self._listed: tuple[tuple[bytes, ...], tuple[CertificateAndChain, ...]] = ((), ())
        self.description = key.uri(token)
        self._public_key = public_key
        self._generation = token.generation
        self._context_pin: str | None = None
        self._closed = False

    @classmethod
    def open(
        cls, ref: str, options: KeyOptions, *, certificate_ref: str | x509.Certificate | None = None
    ) -> Pkcs11Key:
        key_uri = Pkcs11Uri.parse(ref)
        cert_uri, file_certificate = None, None
        if isinstance(certificate_ref, x509.Certificate):
            file_certificate = certificate_ref  # hybrid mode: it picks the token key
        elif certificate_ref is not None:
            cert_uri = key_uri if certificate_ref == ref else Pkcs11Uri.parse(certificate_ref)
        pin_uri = key_uri.or_else(cert_uri, "pin_value", "pin_source")
        module_uri = key_uri.or_else(cert_uri, "module_path", "module_name")
        module = Module.load(Module.path_for(module_uri, options.pkcs11_lib))
        log.debug("PKCS#11 module %s", module.path)
        found, entry = (
            (None, None) if cert_uri is None else one_certificate(module, cert_uri, pin_uri)
        )
        try:
            if found is not None and (cert_uri is key_uri or not key_uri.selects_token):
                session, found = found, None  # the key takes over the search's use
            else:
                session = TokenSession.open(module, one_token(module, key_uri))
            try:
                found_by = (entry, cert_uri)
                return cls._on_token(session, key_uri, pin_uri, found_by, file_certificate, options)
            except BaseException:
                session.release()
                raise
        finally:
            if found is not None:
                found.release()

    @classmethod
    def _on_token(
        cls,
        session: TokenSession,
        key_uri: Pkcs11Uri,
        pin_uri: Pkcs11Uri,
        found_by: tuple[TokenCertificate | None, Pkcs11Uri | None],
        file_certificate: x509.Certificate | None,
        options: KeyOptions,
    ) -> Pkcs11Key:
        entry, cert_uri = found_by  # the certificate object, and the URI that named it
        certificate = entry.certificate if entry else file_certificate
        expected = certificate_key(certificate) if certificate is not None else None
        key = select_key(session, key_uri, pin_uri, entry, expected)
        public_key = expected if expected is not None else key.public_key
        if public_key is None:
            raise KeySourceError(
                f"cannot read the public key of {key.uri(session)}",
                hint="put its public key or certificate on the token, or pass --certificate",
            )
        leaf = entry.certificate if entry else None
        chain: tuple[x509.Certificate, ...] = ()
        if file_certificate is None:  # the certificate of a key URI alone, and the chain
            leaf, chain = token_chain(session, leaf, public_key)
        log.debug("private key %s; %d issuer(s) on the token", key.uri(session), len(chain))
        settings = SignSettings(session.mechanisms(), options.reuse_pin, pin_uri)
        return cls(session, key, public_key, settings, certificate=leaf, chain=chain,
                   certificate_uri=cert_uri)  # fmt: skip

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    def sign(self, message: bytes, digest: Digest = "SHA256") -> bytes:
        hashed = hashlib.new(digest.lower(), message).digest()
        if self.key.key_type == KeyType.EC:
            mechanism, data = Mechanism.ECDSA, hashed
        elif int(COMBINED_RSA[digest]) in self.settings.mechanisms:
            mechanism, data = COMBINED_RSA[digest], message
        else:
            mechanism, data = Mechanism.RSA_PKCS, DIGEST_INFO[digest] + hashed
        raw = self.token.run(
            lambda s: self._sign_once(mechanism, data), f"signing with {self.description}"
        )
        COUNTERS.signed(mechanism.name)
        if self.key.key_type != KeyType.EC:
            return raw
        half = len(raw) // 2
        return encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )

    def find_certificates(self) -> tuple[CertificateAndChain, ...]:
        """This key's certificates on the token now, each with its chain from the token: those
        the certificate URI named (by id/object), else those holding the key's public key.
        Through the session already open (and logged in): no new login. One search and one
        read per certificate; parsed, and the chain walked, only when they changed."""
        named = self.certificate_uri
        by_key = None if named is not None and named.selects_object else self._public_key

        def look(session: Any) -> tuple[CertificateAndChain, ...]:
            values = certificate_values(session, named)
            if values != self._listed[0]:
                self._listed = (values, key_certificates(session, values, by_key))
            return self._listed[1]

        return self.token.run(look, "listing the key's certificates")

    def _sign_once(self, mechanism: Mechanism, data: bytes) -> bytes:
        try:
            return self._sign_with_handle(mechanism, data)
        except p11.UserNotLoggedIn:
            if self.token.logged_in:
                raise  # the login was lost: run() reopens the session
            self.token.login(self.settings.pin_uri)  # a card that shows keys before login
            return self._sign_with_handle(mechanism, data)

    def _sign_with_handle(self, mechanism: Mechanism, data: bytes) -> bytes:
        handle = self._handle()
        pin = self._pin_for_signature() if self.key.always_authenticate else None
        try:
            signature = handle.sign(data, mechanism=mechanism, pin=pin)
        except PIN_ERRORS as exc:
            self._context_pin = None
            raise pin_refused(exc, self.token.token) from None
        if pin is not None:
            COUNTERS.context_logins += 1
        return bytes(signature)

    def _handle(self) -> Any:
        """The key object, found again when the token session was reopened or switched."""
        if self._generation == self.token.generation:
            return self.key.handle
        want = spki(self._public_key)
        for key in find_private_keys(
            self.token.session, self.key.id or None, self.key.label or None
        ):
            if key.key_type == self.key.key_type and (
                key.public_key is None or spki(key.public_key) == want
            ):
                self.key, self._generation = key, self.token.generation
                return key.handle
        raise KeySourceError(
            f"the key {self.description} is gone from token {self.token.name}",
            hint="was the token re-initialized or the key deleted?",
        )

    def _pin_for_signature(self) -> str:
        if self.settings.reuse_pin and self.token.user_pin is not None:
            return self.token.user_pin
        if self._context_pin is None:
            self._context_pin = ask_secret(
                f"PIN for key {self.key.label or self.key.id.hex()!r} (context-specific login): ",
                instead="--reuse-pin (to use the token's user PIN for every signature)",
            )
        return self._context_pin

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._context_pin = None
            self.token.release()


def open_key(
    ref: str, options: KeyOptions, *, certificate_ref: str | x509.Certificate | None = None
) -> KeyBackend:
    """The entry point ``hwsigner.keys.open_key`` uses for ``pkcs11:`` references."""
    return Pkcs11Key.open(ref, options, certificate_ref=certificate_ref)


@dataclass(frozen=True, slots=True)
class ListedCertificate:
    """A certificate for ``read-certificate-data``, with a URI that selects exactly it."""

    certificate: x509.Certificate
    uri: str


def list_certificates(ref: str, pkcs11_lib: str | None = None) -> list[ListedCertificate]:
    """Every certificate ``ref`` matches, each with a URI that selects exactly it."""
    uri = Pkcs11Uri.parse(ref)
    found = search_certificates(Module.load(Module.path_for(uri, pkcs11_lib)), uri, uri)
    for session, _ in found:
        session.release()
    return [ListedCertificate(entry.certificate, entry.uri(session)) for session, entry in found]


__all__ = [
    "COUNTERS",
    "ListedCertificate",
    "Pkcs11Key",
    "SignSettings",
    "generate_key",
    "install_certificate",
    "list_certificates",
    "open_key",
]
