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
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import KeyType, Mechanism
from pkcs11 import exceptions as p11

from .._tty import ask_secret
from ..errors import CertificateError, ConfigError, KeySourceError, PasswordError
from . import Digest, KeyBackend, KeyOptions, PublicKey
from .pkcs11_find import (
    TokenKey,
    find_certificates,
    find_private_keys,
    issuer_chain,
    newest_for,
    object_uri,
    spki,
)
from .pkcs11_module import Module, failure
from .pkcs11_select import (
    Found,
    ListedCertificate,
    list_certificates,
    module_uri_of,
    one_certificate,
    one_token_session,
    pin_uri_of,
    select_key,
    selects_token,
)
from .pkcs11_token import COUNTERS, GONE, TokenSession
from .pkcs11_uri import Pkcs11Uri

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
PIN_ERRORS = (p11.PinIncorrect, p11.PinLocked, p11.PinExpired, p11.PinInvalid, p11.PinLenRange)


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
        description: str = "PKCS#11 key",
    ) -> None:
        self.token = token
        self.key = key
        self.settings = settings
        self.certificate = certificate
        self.chain = chain
        self.description = description
        self._public_key = public_key
        self._generation = token.generation
        self._context_pin: str | None = None
        self._closed = False

    @classmethod
    def open(
        cls, ref: str, options: KeyOptions, *, certificate_ref: str | None = None
    ) -> Pkcs11Key:
        key_uri = Pkcs11Uri.parse(ref)
        cert_uri = None
        file_certificate = None
        if certificate_ref is not None and certificate_ref.startswith("pkcs11:"):
            cert_uri = key_uri if certificate_ref == ref else Pkcs11Uri.parse(certificate_ref)
        elif certificate_ref is not None:
            file_certificate = _file_certificate(certificate_ref)
        pin_uri = pin_uri_of(key_uri, cert_uri)
        module = Module.load(Module.path_for(module_uri_of(key_uri, cert_uri), options.pkcs11_lib))
        log.debug("PKCS#11 module %s", module.path)
        found = one_certificate(module, cert_uri, pin_uri) if cert_uri is not None else None
        try:
            if found is not None and (cert_uri is key_uri or not selects_token(key_uri)):
                session = found.session
                session.acquire()
            else:
                session = one_token_session(module, key_uri)
            try:
                return cls._on_token(session, key_uri, pin_uri, found, file_certificate, options)
            except BaseException:
                session.release()
                raise
        finally:
            if found is not None:
                found.session.release()

    @classmethod
    def _on_token(
        cls,
        session: TokenSession,
        key_uri: Pkcs11Uri,
        pin_uri: Pkcs11Uri,
        found: Found | None,
        file_certificate: x509.Certificate | None,
        options: KeyOptions,
    ) -> Pkcs11Key:
        certificate = found.entry.certificate if found else file_certificate
        expected = _certificate_key(certificate) if certificate is not None else None
        key = select_key(session, key_uri, pin_uri, found.entry if found else None, expected)
        public_key = expected if expected is not None else key.public_key
        if public_key is None:
            named = object_uri(session.token, key.id, key.label, "private")
            raise KeySourceError(
                f"cannot read the public key of {named}",
                hint="put its public key or certificate on the token, or pass --certificate",
            )
        leaf = found.entry.certificate if found else None
        chain: tuple[x509.Certificate, ...] = ()
        if file_certificate is None:
            on_token = session.run(lambda s: find_certificates(s, Pkcs11Uri()), "reading the chain")
            if leaf is None:  # a key URI alone: the token's certificate for this key, if any
                leaf = newest_for(public_key, [c.certificate for c in on_token])
            if leaf is not None:
                chain = issuer_chain(leaf, [c.certificate for c in on_token])
                log.debug("certificate %s; %d issuer(s) on the token", leaf.subject, len(chain))
        try:
            mechanisms = frozenset(int(m) for m in session.token.slot.get_mechanisms())
        except p11.PKCS11Error as exc:  # then RSA signs with CKM_RSA_PKCS, which every token has
            log.debug("token %s lists no mechanisms: %s", session.name, type(exc).__name__)
            mechanisms = frozenset()
        description = object_uri(session.token, key.id, key.label, "private").format()
        log.debug(
            "private key %s%s", description, " (always authenticate)" * key.always_authenticate
        )
        return cls(
            session,
            key,
            public_key,
            SignSettings(mechanisms, options.reuse_pin, pin_uri),
            certificate=leaf,
            chain=chain,
            description=description,
        )

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
        except PIN_ERRORS:
            self._context_pin = None
            raise PasswordError(
                f"the token refused the PIN for {self.description}",
                hint="not retried automatically, to keep the token from locking",
            ) from None
        except p11.PKCS11Error as exc:
            if isinstance(exc, GONE):
                raise
            raise failure(exc, f"signing with {self.description}") from exc
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
                self.key = key
                self._generation = self.token.generation
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


def open_key(ref: str, options: KeyOptions, *, certificate_ref: str | None = None) -> KeyBackend:
    """The entry point ``hwsigner.keys.open_key`` uses for ``pkcs11:`` references."""
    return Pkcs11Key.open(ref, options, certificate_ref=certificate_ref)


def _certificate_key(certificate: x509.Certificate) -> PublicKey:
    public_key = certificate.public_key()
    if not isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise CertificateError(
            f"the certificate's {type(public_key).__name__.lstrip('_')} key is not supported",
            hint="IAM Roles Anywhere takes RSA and EC (P-256, P-384, P-521) keys",
        )
    return public_key


def _file_certificate(path: str) -> x509.Certificate | None:
    """Hybrid mode: the certificate file picks the token key whose public key it holds."""
    from ..identity import read_certificates

    try:
        return read_certificates(path, "--certificate")[0]
    except (CertificateError, ConfigError):
        return None  # identity reports problems with the file itself


__all__ = [
    "ListedCertificate",
    "Pkcs11Key",
    "SignSettings",
    "list_certificates",
    "open_key",
]
