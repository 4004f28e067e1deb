"""Choosing the one certificate and the one private key that URIs name, across tokens.

    >>> from hwsigner.keys.pkcs11.select import one_certificate, select_key
    >>> session, entry = one_certificate(module, uri, pin_uri=uri)     # doctest: +SKIP
    >>> key = select_key(session, uri, uri, entry, expected=None)     # doctest: +SKIP

Certificates are searched on every matching token without logging in; only when none is found
and exactly one token matches does the search log in and look again, for private certificates
(draft-woodhouse-cert-best-practice, section 8.1). A private key is found by the URI's
``id``/``object``, else by the certificate's ``CKA_ID``, and kept only when its public key is
the certificate's: keys and certificates are matched by public key, never by a trial signature.
"""

from __future__ import annotations

import logging
from typing import Any

from pkcs11.constants import TokenFlag

from ...errors import CertificateError, ConfigError, KeySourceError
from ...x509certs import spki
from ..backend import PublicKey
from .module import Module, matching_tokens
from .objects import TokenCertificate, TokenKey, find_certificates, find_private_keys
from .session import TokenSession
from .uri import Pkcs11Uri

log = logging.getLogger("hwsigner")


def search_certificates(
    module: Module, uri: Pkcs11Uri, pin_uri: Pkcs11Uri
) -> list[tuple[TokenSession, TokenCertificate]]:
    """Every certificate the URI matches on every token it matches, each with one use of its
    token's session. Found without login, else (one token) after it: draft-woodhouse-cert-best-
    practice 8.1."""
    sessions = [TokenSession.open(module, token) for token in matching_tokens(module, uri)]
    try:
        found = _certificates_in(sessions, uri)
        if not found and len(sessions) == 1 and not sessions[0].logged_in:
            log.debug("no certificate visible without login; logging in to look again")
            sessions[0].login(pin_uri)
            found = _certificates_in(sessions, uri)
        for session, _ in found:
            session.acquire()  # the search's own uses end below
    finally:
        for session in sessions:
            session.release()
    return found


def _certificates_in(
    sessions: list[TokenSession], uri: Pkcs11Uri
) -> list[tuple[TokenSession, TokenCertificate]]:
    doing = "searching certificates"
    return [(t, c) for t in sessions for c in t.run(lambda s: find_certificates(s, uri), doing)]


def one_certificate(
    module: Module, uri: Pkcs11Uri, pin_uri: Pkcs11Uri
) -> tuple[TokenSession, TokenCertificate]:
    """The single certificate the URI names, or an error listing what it matched instead."""
    found = search_certificates(module, uri, pin_uri)
    if len(found) == 1:
        return found[0]
    for session, _ in found:
        session.release()
    if not found:
        raise CertificateError(
            f"no certificate on the token matches {uri}",
            hint="list them with: hwsigner read-certificate-data --certificate 'pkcs11:token=...'",
        )
    listed = ", ".join(entry.uri(session) for session, entry in found)
    raise ConfigError(
        f"{len(found)} certificates match {uri}: {listed}",
        hint="select one with its object= (label) or id=",
    )


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
        listed = ", ".join(key.uri(session) for key in candidates)
        raise ConfigError(
            f"{len(candidates)} private keys match {uri}: {listed}",
            hint="select one with its id= or object=",
        )
    return candidates[0]


def _key_candidates(
    session: Any, uri: Pkcs11Uri, certificate: TokenCertificate | None
) -> list[TokenKey]:
    if uri.selects_object:
        keys = find_private_keys(session, uri.id, uri.object)
        if keys:
            return keys
    if certificate is not None and certificate.id:
        keys = find_private_keys(session, certificate.id, None)  # the certificate's CKA_ID
        if keys:
            return keys
    return [] if uri.selects_object else find_private_keys(session, None, None)


def _belonging_to(
    candidates: list[TokenKey], expected: PublicKey, session: TokenSession
) -> list[TokenKey]:
    want = spki(expected)
    same = [
        key for key in candidates if key.public_key is not None and spki(key.public_key) == want
    ]
    if same or not candidates:
        return same
    if len(candidates) == 1 and candidates[0].public_key is None:
        # The token shows no public half (no CKA_EC_POINT, no public key object): the id or
        # label is all there is to go by.
        log.debug("cannot read the public key of %s; trusting its id", candidates[0].uri(session))
        return candidates
    raise CertificateError(
        f"the certificate's public key is not the key's "
        f"({', '.join(key.uri(session) for key in candidates)})",
        hint="use the key the certificate was issued for; compare their public keys",
    )


__all__ = ["one_certificate", "search_certificates", "select_key"]
