"""Objects on a token: certificates, private keys, their public halves, and the chain.

    >>> from hwsigner.keys.pkcs11_find import find_certificates, issuer_chain
    >>> certs = find_certificates(session, uri)                       # doctest: +SKIP
    >>> chain = issuer_chain(certs[0].certificate, [c.certificate for c in certs])  # doctest: +SKIP

Keys and certificates are matched by public key (``CKA_EC_POINT``, or modulus and exponent),
never by a trial signature. The chain holds only certificates that really issued the leaf
(issuer name and signature checked), never the leaf or an unrelated certificate on the token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from asn1crypto.core import OctetString
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pkcs11 import Attribute, CertificateType, KeyType, ObjectClass
from pkcs11 import exceptions as p11

from ..certrules import extension, issued_by
from ..sigv4x509 import MAX_CHAIN
from . import PublicKey
from .pkcs11_uri import Pkcs11Uri

log = logging.getLogger("hwsigner")

# DER of the named-curve OIDs in CKA_EC_PARAMS
CURVES: dict[bytes, ec.EllipticCurve] = {
    bytes.fromhex("06082a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("06052b81040022"): ec.SECP384R1(),
    bytes.fromhex("06052b81040023"): ec.SECP521R1(),
}


@dataclass(frozen=True, slots=True)
class TokenCertificate:
    """A certificate object: the certificate and the attributes that name it."""

    certificate: x509.Certificate
    id: bytes
    label: str


@dataclass(frozen=True, slots=True)
class TokenKey:
    """A private key object, by the attributes that find it again after a reopen."""

    handle: Any
    id: bytes
    label: str
    key_type: KeyType
    always_authenticate: bool
    public_key: PublicKey | None


def token_uri(token: Any) -> Pkcs11Uri:
    """A URI naming ``token`` by its fields (the label alone may not be unique)."""
    return Pkcs11Uri(
        manufacturer=token.manufacturer_id.strip() or None,
        model=token.model.strip() or None,
        serial=token.serial.decode("utf-8", "replace").strip() or None,
        token=token.label.strip(),
    )


def object_uri(token: Any, id_: bytes, label: str, kind: str) -> Pkcs11Uri:
    return replace(token_uri(token), id=id_ or None, object=label or None, type=kind)


def template(uri: Pkcs11Uri, object_class: ObjectClass) -> dict[Attribute, Any]:
    found: dict[Attribute, Any] = {Attribute.CLASS: object_class}
    if uri.id is not None:
        found[Attribute.ID] = uri.id
    if uri.object is not None:
        found[Attribute.LABEL] = uri.object
    return found


def find_certificates(session: Any, uri: Pkcs11Uri) -> list[TokenCertificate]:
    """X.509 certificates matching the URI's id/object; unreadable ones are skipped."""
    found = []
    search = template(uri, ObjectClass.CERTIFICATE)
    search[Attribute.CERTIFICATE_TYPE] = CertificateType.X_509
    for obj in list(session.get_objects(search)):  # one search at a time per session
        try:
            value, id_, label = (
                obj[Attribute.VALUE],
                _optional(obj, Attribute.ID, b""),
                _optional(obj, Attribute.LABEL, ""),
            )
            certificate = x509.load_der_x509_certificate(value)
        except (p11.PKCS11Error, ValueError) as exc:
            log.debug("skipping an unreadable certificate object: %s", type(exc).__name__)
            continue
        found.append(TokenCertificate(certificate, bytes(id_), label))
    return found


def find_private_keys(session: Any, id_: bytes | None, label: str | None) -> list[TokenKey]:
    """Private keys with this CKA_ID and/or CKA_LABEL (either may be None: any)."""
    keys = []
    search = template(Pkcs11Uri(id=id_, object=label), ObjectClass.PRIVATE_KEY)
    for obj in list(session.get_objects(search)):  # one search at a time per session
        key_type = obj.key_type
        if key_type not in (KeyType.RSA, KeyType.EC):
            continue
        id_found = bytes(_optional(obj, Attribute.ID, b""))
        keys.append(
            TokenKey(
                handle=obj,
                id=id_found,
                label=_optional(obj, Attribute.LABEL, ""),
                key_type=key_type,
                always_authenticate=bool(_optional(obj, Attribute.ALWAYS_AUTHENTICATE, False)),
                public_key=public_key_of(session, obj, key_type, id_found),
            )
        )
    return keys


def public_key_of(session: Any, key: Any, key_type: KeyType, id_: bytes) -> PublicKey | None:
    """The public half of a private key: from its own attributes, else from the public key
    or certificate object with the same CKA_ID. None when the token shows none of them."""
    own = _public_from_attributes(key, key_type)
    if own is not None:
        return own
    if not id_:
        return None
    search = {
        Attribute.CLASS: ObjectClass.PUBLIC_KEY,
        Attribute.ID: id_,
        Attribute.KEY_TYPE: key_type,
    }
    for obj in list(session.get_objects(search)):
        found = _public_from_attributes(obj, key_type)
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
            modulus = obj[Attribute.MODULUS]
            exponent = obj[Attribute.PUBLIC_EXPONENT]
            numbers = rsa.RSAPublicNumbers(
                int.from_bytes(exponent, "big"), int.from_bytes(modulus, "big")
            )
            return numbers.public_key()
        curve = CURVES.get(bytes(obj[Attribute.EC_PARAMS]))
        if curve is None:
            return None
        point = ec_point(bytes(obj[Attribute.EC_POINT]), curve)
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    except (p11.PKCS11Error, ValueError):
        return None


def ec_point(value: bytes, curve: ec.EllipticCurve) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING holding the point; some tokens give it bare."""
    bare = 1 + 2 * ((curve.key_size + 7) // 8)
    if len(value) == bare:
        return value
    return bytes(OctetString.load(value).native)


def newest_for(
    public_key: PublicKey, certificates: list[x509.Certificate]
) -> x509.Certificate | None:
    """The certificate of ``public_key`` that expires last (a renewed one beats the old)."""
    want = spki(public_key)
    mine = [c for c in certificates if spki(c.public_key()) == want]
    return max(mine, key=lambda c: c.not_valid_after_utc, default=None)


def spki(public_key: object) -> bytes:
    """The DER SubjectPublicKeyInfo: what two public keys are compared by."""
    return public_key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )


def issuer_chain(
    leaf: x509.Certificate, candidates: list[x509.Certificate]
) -> tuple[x509.Certificate, ...]:
    """The CA certificates among ``candidates`` that issued ``leaf``, nearest first.

    Each link is checked by name and signature; a self-signed root ends the chain and is not
    sent (the service holds it as a trust anchor).
    """
    chain: list[x509.Certificate] = []
    current = leaf
    while len(chain) < MAX_CHAIN:
        issuer = next(
            (c for c in candidates if c != leaf and c not in chain and issued(current, c)), None
        )
        if issuer is None or issued(issuer, issuer):
            break
        chain.append(issuer)
        current = issuer
    return tuple(chain)


def issued(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """True when ``parent`` is a CA (or says nothing of it) whose name and key issued ``child``."""
    constraints = extension(parent, x509.BasicConstraints)
    return (constraints is None or constraints.ca) and issued_by(child, parent)


def _optional(obj: Any, attribute: Attribute, default: Any) -> Any:
    try:
        return obj[attribute]
    except (p11.AttributeTypeInvalid, p11.AttributeSensitive, p11.FunctionFailed):
        return default
