"""Certificates written to a PKCS#11 token beside their key, so a URI alone finds both.

    >>> from hwsigner.provision.install_pkcs11 import install_on_token
    >>> install_on_token("pkcs11:token=dev;object=device?pin-value=1234", leaf, chain,
    ...                  pkcs11_lib=None)                                # doctest: +SKIP
    'pkcs11:token=dev;id=%01;object=device'

The leaf gets the key's ``CKA_ID`` and ``CKA_LABEL`` (how ``credential-process`` and other
PKCS#11 software pair a certificate with its key); CA certificates of the chain are stored once
each, labelled by their CN, with their subject key identifier as ``CKA_ID``. Certificates are
public token objects. Everything is checked before the first write: a certificate for another
key changes nothing, and neither does an existing certificate for the key without ``replace``.
"""

from __future__ import annotations

from typing import Any

from asn1crypto.core import Integer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pkcs11 import Attribute, CertificateType, ObjectClass
from pkcs11 import exceptions as p11

from ..errors import CertificateError, ConfigError, KeySourceError
from ..identity import spki
from ..keys.pkcs11_find import TokenKey, find_private_keys
from ..keys.pkcs11_module import failure
from ..keys.pkcs11_uri import Pkcs11Uri
from .certcheck import describe
from .token_rw import WritableToken

StoredCertificate = tuple[Any, x509.Certificate]  # the token object and what it holds


def install_on_token(
    key_ref: str,
    leaf: x509.Certificate,
    chain: tuple[x509.Certificate, ...],
    pkcs11_lib: str | None,
    *,
    replace: bool = False,
) -> str:
    """Store ``leaf`` (and the chain's CAs) beside the key ``key_ref`` names; return the URI
    that names the key and its certificate."""
    uri = Pkcs11Uri.parse(key_ref)
    if not uri.selects_object:
        raise ConfigError(
            f"{uri} does not say which key", hint="add object= (the key's label) or id="
        )
    with WritableToken.open(uri, pkcs11_lib) as token:
        key = key_for(token, uri, leaf)
        stale = [
            (obj, cert) for obj, cert in certificates(token, key.id, key.label) if cert != leaf
        ]
        if stale and not replace:
            raise ConfigError(
                f"token {token.name} already has a certificate for {key_name(key)} "
                f"({describe(stale[0][1])}, serial {stale[0][1].serial_number:X}); "
                "nothing was changed",
                hint="pass --replace to put the new certificate in its place",
            )
        present = [cert for _, cert in certificates(token)]
        if leaf not in present:
            write(token, leaf, key.id, key.label)
        for ca in chain:
            if ca not in present:
                write(token, ca, ca_id(ca, key.id), ca_label(ca, key.label))
        for obj, _ in stale:
            destroy(token, obj)
        return token.reference(uri, key.id, key.label)


def key_for(token: WritableToken, uri: Pkcs11Uri, leaf: x509.Certificate) -> TokenKey:
    """The one private key the URI names, which must hold the certificate's public key."""
    try:
        keys = find_private_keys(token.session, uri.id, uri.object)
    except p11.PKCS11Error as exc:
        raise failure(exc, f"searching token {token.name}") from exc
    if not keys:
        raise KeySourceError(
            f"no private key on token {token.name} matches {uri}",
            hint="check the URI's object= and id= (pkcs11-tool --list-objects shows them)",
        )
    unreadable = [key for key in keys if key.public_key is None]
    if unreadable:
        raise KeySourceError(
            f"cannot read the public key of {key_name(unreadable[0])} on token {token.name}, "
            "so the certificate cannot be checked against it; nothing was changed",
            hint="keep the key's public key object on the token",
        )
    want = spki(leaf.public_key())
    same = [key for key in keys if key.public_key is not None and spki(key.public_key) == want]
    if not same:
        named = ", ".join(key_name(key) for key in keys)
        raise CertificateError(
            f"the certificate's public key is not the key's ({named} on token {token.name}); "
            "nothing was changed",
            hint="install the certificate issued for this key (from its own CSR)",
        )
    if len(same) > 1:
        raise ConfigError(
            f"{len(same)} keys on token {token.name} match {uri}",
            hint="select one with id= and object=",
        )
    return same[0]


def key_name(key: TokenKey) -> str:
    parts = [f"label {key.label!r}"] if key.label else []
    parts += [f"id {key.id.hex()}"] if key.id else []
    return "the key with " + " and ".join(parts) if parts else "the key"


def certificates(
    token: WritableToken, id_: bytes | None = None, label: str | None = None
) -> list[StoredCertificate]:
    """X.509 certificate objects: all of them, or those with this CKA_ID or this CKA_LABEL."""
    base: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.CERTIFICATE}
    if id_ is None and label is None:
        searches = [base]
    else:
        searches = [{**base, Attribute.ID: id_}] if id_ else []
        searches += [{**base, Attribute.LABEL: label}] if label else []
    found: list[StoredCertificate] = []
    for search in searches:
        for obj in token.find(search):
            try:
                cert = x509.load_der_x509_certificate(bytes(obj[Attribute.VALUE]))
            except (p11.PKCS11Error, ValueError):
                continue
            if all(obj != seen for seen, _ in found):
                found.append((obj, cert))
    return found


def write(token: WritableToken, cert: x509.Certificate, id_: bytes, label: str) -> None:
    """A public token object of class CKO_CERTIFICATE (PKCS#11 v2.40 section 4.6.3)."""
    template = {
        Attribute.CLASS: ObjectClass.CERTIFICATE,
        Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: False,
        Attribute.LABEL: label,
        Attribute.SUBJECT: cert.subject.public_bytes(),
        Attribute.ISSUER: cert.issuer.public_bytes(),
        Attribute.SERIAL_NUMBER: Integer(cert.serial_number).dump(),
        Attribute.VALUE: cert.public_bytes(Encoding.DER),
    }
    if id_:
        template[Attribute.ID] = id_
    try:
        token.session.create_object(template)
    except p11.PKCS11Error as exc:
        raise failure(
            exc, f"writing the certificate {describe(cert)} to token {token.name}"
        ) from exc


def destroy(token: WritableToken, obj: Any) -> None:
    try:
        obj.destroy()
    except p11.PKCS11Error as exc:
        raise failure(exc, f"removing the old certificate from token {token.name}") from exc


def ca_id(ca: x509.Certificate, key_id: bytes) -> bytes:
    """The CA's subject key identifier, unless it collides with the key's id."""
    try:
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return b""
    return b"" if ski == key_id else ski


def ca_label(ca: x509.Certificate, key_label: str) -> str:
    label = describe(ca).removeprefix("CN=")
    return label if label != key_label else f"{label} (CA)"
