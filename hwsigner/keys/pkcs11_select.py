"""Choosing the one certificate and the one private key that URIs name, across tokens.

    >>> from hwsigner.keys.pkcs11_select import search_certificates, select_key
    >>> found = search_certificates(module, uri, pin_uri=uri)         # doctest: +SKIP
    >>> session, entry = found[0].session, found[0].entry             # doctest: +SKIP
    >>> key = select_key(session, uri, uri, entry, expected=None)     # doctest: +SKIP

Certificates are searched on every matching token without logging in; only when none is found
and exactly one token matches does the search log in and look again, for private certificates
(draft-woodhouse-cert-best-practice, section 8.1). Private keys are found by the URI's
``id``/``object``, else by the certificate's ``CKA_ID``, and kept only when their public key is
the certificate's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cryptography import x509
from pkcs11.constants import TokenFlag

from ..errors import CertificateError, ConfigError, KeySourceError
from . import PublicKey
from .pkcs11_find import (
    TokenCertificate,
    TokenKey,
    find_certificates,
    find_private_keys,
    object_uri,
    spki,
)
from .pkcs11_module import Module, describe_token, matching_tokens
from .pkcs11_token import TokenSession
from .pkcs11_uri import Pkcs11Uri

log = logging.getLogger("hwsigner")

TOKEN_ATTRIBUTES = (
    "token",
    "manufacturer",
    "model",
    "serial",
    "slot_id",
    "slot_description",
    "slot_manufacturer",
)


@dataclass(frozen=True, slots=True)
class Found:
    """A certificate and the session of the token that holds it."""

    session: TokenSession
    entry: TokenCertificate

    @property
    def uri(self) -> str:
        return object_uri(self.session.token, self.entry.id, self.entry.label, "cert").format()


def search_certificates(module: Module, uri: Pkcs11Uri, pin_uri: Pkcs11Uri) -> list[Found]:
    """Every certificate the URI matches; each Found holds one use of its session.

    The caller releases the sessions it does not keep (``release_all``).
    """
    sessions = [TokenSession.open(module, token) for token in matching_tokens(module, uri)]
    try:
        found = _certificates_in(sessions, uri)
        if not found and len(sessions) == 1 and not sessions[0].logged_in:
            log.debug("no certificate visible without login; logging in to look again")
            sessions[0].login(pin_uri)
            found = _certificates_in(sessions, uri)
    except BaseException:
        for session in sessions:
            session.release()
        raise
    for item in found:
        item.session.acquire()  # one use per Found ...
    for session in sessions:
        session.release()  # ... and the search's own use ends here
    return found


def _certificates_in(sessions: list[TokenSession], uri: Pkcs11Uri) -> list[Found]:
    return [
        Found(session, entry)
        for session in sessions
        for entry in session.run(lambda s: find_certificates(s, uri), "searching certificates")
    ]


def release_all(found: list[Found], keep: Found | None = None) -> None:
    for item in found:
        if item is not keep:
            item.session.release()


def one_certificate(module: Module, uri: Pkcs11Uri, pin_uri: Pkcs11Uri) -> Found:
    """The single certificate the URI names, or an error listing what it matched instead."""
    found = search_certificates(module, uri, pin_uri)
    if len(found) == 1:
        return found[0]
    release_all(found)
    if not found:
        raise CertificateError(
            f"no certificate on the token matches {uri}",
            hint="list the token's certificates with: hwsigner read-certificate-data "
            "--certificate 'pkcs11:token=...'",
        )
    listed = ", ".join(item.uri for item in found)
    raise ConfigError(
        f"{len(found)} certificates match {uri}: {listed}",
        hint="select one with its object= (label) or id=",
    )


def selects_token(uri: Pkcs11Uri) -> bool:
    return any(getattr(uri, name) is not None for name in TOKEN_ATTRIBUTES)


def select_key(
    session: TokenSession,
    uri: Pkcs11Uri,
    pin_uri: Pkcs11Uri,
    certificate: TokenCertificate | None,
    expected: PublicKey | None,
) -> TokenKey:
    """The private key on this token that ``uri`` names and that belongs to ``expected``."""
    if session.token.flags & TokenFlag.LOGIN_REQUIRED:
        session.login(pin_uri)
    candidates = session.run(lambda s: _key_candidates(s, uri, certificate), "finding the key")
    if not candidates and not session.logged_in:
        session.login(pin_uri)
        candidates = session.run(lambda s: _key_candidates(s, uri, certificate), "finding the key")
    if expected is not None:
        candidates = _belonging_to(candidates, expected, session)
    if not candidates:
        raise KeySourceError(
            f"no private key on token {session.name} matches {uri}",
            hint="check the URI's id= or object= (pkcs11-tool --list-objects shows them)",
        )
    if len(candidates) > 1:
        listed = ", ".join(_key_uri(session, key) for key in candidates)
        raise ConfigError(
            f"{len(candidates)} private keys match {uri}: {listed}",
            hint="select one with its id= or object=",
        )
    return candidates[0]


def _key_candidates(
    session: object, uri: Pkcs11Uri, certificate: TokenCertificate | None
) -> list[TokenKey]:
    if uri.selects_object:
        keys = find_private_keys(session, uri.id, uri.object)
        if keys:
            return keys
    if certificate is not None and certificate.id:
        keys = find_private_keys(session, certificate.id, None)  # the certificate's CKA_ID
        if keys:
            return keys
    if not uri.selects_object:
        return find_private_keys(session, None, None)
    return []


def _belonging_to(
    candidates: list[TokenKey], expected: PublicKey, session: TokenSession
) -> list[TokenKey]:
    want = spki(expected)
    same = [
        key for key in candidates if key.public_key is not None and spki(key.public_key) == want
    ]
    if same:
        return same
    if len(candidates) == 1 and candidates[0].public_key is None:
        # The token shows no public half (no CKA_EC_POINT, no public key object): the id or
        # label is all there is to go by.
        log.debug(
            "cannot read the public key of %s; trusting its id", _key_uri(session, candidates[0])
        )
        return candidates
    if candidates:
        raise CertificateError(
            f"no private key on token {session.name} matches the certificate "
            f"(looked at {', '.join(_key_uri(session, key) for key in candidates)})",
            hint="use the key the certificate was issued for; compare their public keys",
        )
    return []


def _key_uri(session: TokenSession, key: TokenKey) -> str:
    return object_uri(session.token, key.id, key.label, "private").format()


@dataclass(frozen=True, slots=True)
class ListedCertificate:
    """A certificate for ``read-certificate-data``, with a URI that selects exactly it."""

    certificate: x509.Certificate
    uri: str


def list_certificates(ref: str, pkcs11_lib: str | None = None) -> list[ListedCertificate]:
    """Every certificate ``ref`` matches, each with a URI that selects exactly it."""
    uri = Pkcs11Uri.parse(ref)
    module = Module.load(Module.path_for(uri, pkcs11_lib))
    found = search_certificates(module, uri, uri)
    try:
        return [ListedCertificate(item.entry.certificate, item.uri) for item in found]
    finally:
        release_all(found)


def one_token_session(module: Module, uri: Pkcs11Uri) -> TokenSession:
    """The session of the one token a key URI selects (a PIN is asked for one token only)."""
    tokens = matching_tokens(module, uri)
    if len(tokens) > 1:
        raise ConfigError(
            f"{len(tokens)} tokens match {uri}: {', '.join(describe_token(t) for t in tokens)}",
            hint="add token= or serial= to the URI",
        )
    return TokenSession.open(module, tokens[0])


def module_uri_of(key_uri: Pkcs11Uri, cert_uri: Pkcs11Uri | None) -> Pkcs11Uri:
    """The URI whose module-path / module-name count: the key's, else the certificate's."""
    if key_uri.module_path or key_uri.module_name or cert_uri is None:
        return key_uri
    return cert_uri


def pin_uri_of(key_uri: Pkcs11Uri, cert_uri: Pkcs11Uri | None) -> Pkcs11Uri:
    """The URI whose pin-value / pin-source count: the key's, else the certificate's."""
    if key_uri.pin_value is not None or key_uri.pin_source is not None or cert_uri is None:
        return key_uri
    return cert_uri
