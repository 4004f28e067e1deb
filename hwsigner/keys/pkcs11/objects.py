"""What is on a token: certificates, private keys, their public halves, and the chain.

    >>> from hwsigner.keys.pkcs11.objects import find_certificates, token_chain
    >>> certs = find_certificates(session.session, uri)               # doctest: +SKIP
    >>> leaf, chain = token_chain(session, certs[0].certificate, public_key)  # doctest: +SKIP

A key's public half comes from its own attributes (``CKA_EC_POINT``, or modulus and exponent),
else from the public key or certificate object with its ``CKA_ID``. The chain holds only
certificates that really issued the leaf (``x509rules.walk_chain``: issuer name and signature),
never the leaf, a self-signed root or an unrelated certificate on the token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from asn1crypto.core import OctetString
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute, CertificateType, KeyType, ObjectClass
from pkcs11 import exceptions as p11

from ...errors import CertificateError
from ...x509certs import is_self_signed, spki
from ...x509rules import walk_chain
from ..backend import PublicKey
from .module import object_uri
from .session import TokenSession
from .uri import Pkcs11Uri

log = logging.getLogger("hwsigner")

# DER of the named-curve OIDs in CKA_EC_PARAMS
CURVES: dict[bytes, ec.EllipticCurve] = {
    bytes.fromhex("06082a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("06052b81040022"): ec.SECP384R1(),
    bytes.fromhex("06052b81040023"): ec.SECP521R1(),
}

KINDS = {
    ObjectClass.PRIVATE_KEY: "private key",
    ObjectClass.PUBLIC_KEY: "public key",
    ObjectClass.CERTIFICATE: "certificate",
    ObjectClass.SECRET_KEY: "secret key",
    ObjectClass.DATA: "data object",
}


@dataclass(frozen=True, slots=True)
class TokenCertificate:
    """A certificate object: the object, what it holds, and the attributes that name it."""

    handle: Any
    certificate: x509.Certificate
    id: bytes
    label: str

    def uri(self, session: TokenSession) -> str:
        return object_uri(session.token, self.id, self.label, "cert")


@dataclass(frozen=True, slots=True)
class TokenKey:
    """A private key object, by the attributes that find it again after a reopen."""

    handle: Any
    id: bytes
    label: str
    key_type: KeyType
    always_authenticate: bool
    public_key: PublicKey | None

    def uri(self, session: TokenSession) -> str:
        return object_uri(session.token, self.id, self.label, "private")


def search(
    session: Any, object_class: ObjectClass, id_: bytes | None, label: str | None
) -> list[Any]:
    """Objects of a class with this CKA_ID and/or CKA_LABEL (None: any)."""
    template: dict[Attribute, Any] = {Attribute.CLASS: object_class}
    if id_ is not None:
        template[Attribute.ID] = id_
    if label is not None:
        template[Attribute.LABEL] = label
    if object_class == ObjectClass.CERTIFICATE:
        template[Attribute.CERTIFICATE_TYPE] = CertificateType.X_509
    return list(session.get_objects(template))  # one search at a time per session


def find_certificates(session: Any, uri: Pkcs11Uri) -> list[TokenCertificate]:
    """X.509 certificates matching the URI's id/object; unreadable ones are skipped."""
    found = []
    for obj in search(session, ObjectClass.CERTIFICATE, uri.id, uri.object):
        try:
            certificate = x509.load_der_x509_certificate(obj[Attribute.VALUE])
        except (p11.PKCS11Error, ValueError) as exc:
            log.debug("skipping an unreadable certificate object: %s", type(exc).__name__)
            continue
        id_, label_ = bytes(_optional(obj, Attribute.ID, b"")), _optional(obj, Attribute.LABEL, "")
        found.append(TokenCertificate(obj, certificate, id_, label_))
    return found


def find_private_keys(session: Any, id_: bytes | None, label: str | None) -> list[TokenKey]:
    """RSA and EC private keys with this CKA_ID and/or CKA_LABEL (either may be None: any)."""
    keys = []
    for obj in search(session, ObjectClass.PRIVATE_KEY, id_, label):
        key_type = obj.key_type
        if key_type not in (KeyType.RSA, KeyType.EC):
            continue
        found_id = bytes(_optional(obj, Attribute.ID, b""))
        keys.append(
            TokenKey(
                handle=obj,
                id=found_id,
                label=_optional(obj, Attribute.LABEL, ""),
                key_type=key_type,
                always_authenticate=bool(_optional(obj, Attribute.ALWAYS_AUTHENTICATE, False)),
                public_key=public_key_of(session, obj, key_type, found_id),
            )
        )
    return keys


def inventory(session: Any) -> list[tuple[str, bytes, str]]:
    """The kind (``"private key"``, ...), CKA_ID and CKA_LABEL of every object in sight."""
    return [
        (
            KINDS.get(_optional(obj, Attribute.CLASS, None), "object"),
            bytes(_optional(obj, Attribute.ID, b"")),
            _optional(obj, Attribute.LABEL, ""),
        )
        for obj in session.get_objects({})
    ]


def public_key_of(session: Any, key: Any, key_type: KeyType, id_: bytes) -> PublicKey | None:
    """The public half of a key: from its own attributes, else from the public key or the
    certificate with the same CKA_ID. None when the token shows none of them."""
    own = _public_from_attributes(key, key_type)
    if own is not None or not id_:
        return own
    for obj in search(session, ObjectClass.PUBLIC_KEY, id_, None):
        found = _public_from_attributes(obj, key_type) if obj.key_type == key_type else None
        if found is not None:
            return found
    for cert in find_certificates(session, Pkcs11Uri(id=id_)):
        public = cert.certificate.public_key()
        if isinstance(public, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            return public
    return None


def _public_from_attributes(obj: Any, key_type: KeyType) -> PublicKey | None:
    try:
        if key_type == KeyType.RSA:
            exponent = int.from_bytes(obj[Attribute.PUBLIC_EXPONENT], "big")
            modulus = int.from_bytes(obj[Attribute.MODULUS], "big")
            return rsa.RSAPublicNumbers(exponent, modulus).public_key()
        curve = CURVES.get(bytes(obj[Attribute.EC_PARAMS]))
        if curve is None:
            return None
        # CKA_EC_POINT is a DER OCTET STRING holding the point; some tokens give it bare.
        point = bytes(obj[Attribute.EC_POINT])
        if len(point) != 1 + 2 * ((curve.key_size + 7) // 8):
            point = bytes(OctetString.load(point).native)
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    except (p11.PKCS11Error, ValueError):
        return None


def _optional(obj: Any, attribute: Attribute, default: Any) -> Any:
    try:
        return obj[attribute]
    except (p11.AttributeTypeInvalid, p11.AttributeSensitive, p11.FunctionFailed):
        return default


def certificate_key(certificate: x509.Certificate) -> PublicKey:
    """The certificate's public key, when it is of a kind a token key can be."""
    public_key = certificate.public_key()
    if not isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise CertificateError(
            f"the certificate's {type(public_key).__name__.lstrip('_')} key is not supported",
            hint="IAM Roles Anywhere takes RSA and EC (P-256, P-384, P-521) keys",
        )
    return public_key


def token_chain(
    session: TokenSession, leaf: x509.Certificate | None, public_key: PublicKey
) -> tuple[x509.Certificate | None, tuple[x509.Certificate, ...]]:
    """The leaf and its issuers among the token's certificates. Without a leaf, the token's
    certificate of ``public_key`` that expires last (a renewed one beats the old)."""
    found = session.run(lambda s: find_certificates(s, Pkcs11Uri()), "reading the chain")
    on_token = [c.certificate for c in found]
    if leaf is None:
        want = spki(public_key)
        mine = [c for c in on_token if spki(c.public_key()) == want]
        leaf = max(mine, key=lambda c: c.not_valid_after_utc, default=None)
    if leaf is None:
        return None, ()
    # a self-signed root is not sent: the service holds it as a trust anchor
    links = walk_chain(leaf, on_token).links
    return leaf, tuple(cert for cert in links if not is_self_signed(cert))


__all__ = [
    "TokenCertificate", "TokenKey", "certificate_key", "find_certificates", "find_private_keys",
    "inventory", "public_key_of", "search", "token_chain",
]  # fmt: skip
