"""Writing to a token: key pairs made inside it, and certificates installed beside their key.

    >>> from hwsigner.keys.pkcs11 import generate_key, install_certificate
    >>> public_key, reference, description = generate_key(
    ...     "pkcs11:token=dev;object=device?pin-value=1234", "ec-p256", None)  # doctest: +SKIP
    >>> reference                                                       # doctest: +SKIP
    'pkcs11:token=dev;id=%01;object=device'
    >>> install_certificate(reference + "?pin-value=1234", leaf, chain, None)  # doctest: +SKIP
    'pkcs11:token=dev;id=%01;object=device'

Both use a read-write session that logs in as signing does (``session.TokenSession``). A new
private key is a token object, private, sensitive, never extractable, and may only sign; its
public key is a public token object, readable without a PIN. Both carry the URI's label and one
``CKA_ID`` (the URI's ``id``, else the lowest free one); a label or id in use is refused first.

A certificate gets its key's ``CKA_ID`` and ``CKA_LABEL`` (how PKCS#11 software pairs them); the
chain's CA certificates are stored once each, labelled by their CN, with their subject key
identifier as ``CKA_ID``. Everything is checked before the first write. On renewal (``replace``)
the new certificate is written before the old one is deleted: a failure in between leaves the
old one in place.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace as replaced
from typing import Any

from asn1crypto.core import Integer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pkcs11 import Attribute, CertificateType, KeyType, Mechanism, ObjectClass
from pkcs11.constants import TokenFlag
from pkcs11.util.ec import encode_named_curve_parameters

from ...errors import CertificateError, ConfigError, KeySourceError
from ...x509certs import describe
from ..backend import PublicKey
from .module import Module, describe_token, one_token
from .objects import TokenCertificate, certificate_key, find_certificates, inventory, public_key_of
from .select import select_key
from .session import TokenSession
from .uri import Pkcs11Uri

# algorithm -> key type, modulus size, named curve's OID
SPECS = {
    "ec-p256": (KeyType.EC, 0, "1.2.840.10045.3.1.7"),
    "ec-p384": (KeyType.EC, 0, "1.3.132.0.34"),
    "rsa-2048": (KeyType.RSA, 2048, ""),
    "rsa-3072": (KeyType.RSA, 3072, ""),
}
URI_HINT = "name the new key with object= (its label), e.g. pkcs11:token=dev;object=device"


@contextmanager
def writable(uri: Pkcs11Uri, pkcs11_lib: str | None) -> Iterator[TokenSession]:
    """A logged-in read-write session with the one token ``uri`` selects."""
    module = Module.load(Module.path_for(uri, pkcs11_lib))
    token = one_token(module, uri)
    if token.flags & TokenFlag.WRITE_PROTECTED:
        raise KeySourceError(
            f"token {describe_token(token)} is write-protected",
            hint="use a token that can store new objects",
        )
    session = TokenSession.open(module, token, rw=True)
    try:
        session.login(uri)
        yield session
    finally:
        session.release()


def generate_key(ref: str, algorithm: str, pkcs11_lib: str | None) -> tuple[PublicKey, str, str]:
    """Make a key pair on the token ``ref`` names: its public key, URI and description."""
    uri = Pkcs11Uri.parse(ref)
    if not uri.object:
        raise ConfigError(f"{uri} names no label for the new key", hint=URI_HINT)
    if uri.type not in (None, "private"):
        raise ConfigError(f"{uri} asks for a {uri.type} object, not a key", hint=URI_HINT)
    if algorithm not in SPECS:
        raise ConfigError(
            f"unknown key algorithm {algorithm!r}", hint=f"use one of {', '.join(SPECS)}"
        )
    key_type, bits, curve = SPECS[algorithm]
    mechanism = Mechanism.RSA_PKCS_KEY_PAIR_GEN if bits else Mechanism.EC_KEY_PAIR_GEN
    with writable(uri, pkcs11_lib) as token:
        id_ = _new_id(token, uri.object, uri.id)
        mechanisms = token.mechanisms()
        if mechanisms and int(mechanism) not in mechanisms:
            raise KeySourceError(
                f"token {token.name} cannot generate {algorithm} keys (no {mechanism.name})",
                hint="choose another --algorithm",
            )
        public_template, private_template = _templates(bits, curve, id_, uri.object)
        public, _ = token.run(
            lambda s: s.generate_keypair(
                key_type,
                bits or None,
                mechanism=mechanism,
                store=True,
                public_template=public_template,
                private_template=private_template,
            ),
            f"generating an {algorithm} key on token {token.name}",
        )
        public_key = token.run(lambda s: public_key_of(s, public, key_type, id_), "reading it")
        if public_key is None:
            raise KeySourceError(
                f"token {token.name} made the key but does not show its public key",
                hint="read it with pkcs11-tool --read-object --type pubkey",
            )
        reference = _reference(token, uri, id_, uri.object)
        return public_key, reference, f"an {algorithm} key on token {token.name}"


def _templates(
    bits: int, curve: str, id_: bytes, label: str
) -> tuple[dict[Attribute, Any], dict[Attribute, Any]]:
    """The public and private key templates: token objects, the private one sign-only,
    sensitive and never extractable (PKCS#11 v2.40 sections 4.8 and 4.9)."""
    common: dict[Attribute, Any] = {
        Attribute.TOKEN: True,
        Attribute.ID: id_,
        Attribute.LABEL: label,
    }
    public = {**common, Attribute.PRIVATE: False, Attribute.VERIFY: True}
    public |= {Attribute.ENCRYPT: False, Attribute.WRAP: False}
    private = {**common, Attribute.PRIVATE: True, Attribute.SENSITIVE: True}
    private |= {Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.DECRYPT: False}
    private |= {Attribute.UNWRAP: False, Attribute.DERIVE: False}
    if bits:
        public |= {Attribute.MODULUS_BITS: bits, Attribute.PUBLIC_EXPONENT: b"\x01\x00\x01"}
    else:
        public[Attribute.EC_PARAMS] = encode_named_curve_parameters(curve)
    return public, private


def _new_id(token: TokenSession, label: str, id_: bytes | None) -> bytes:
    """``id_``, else the lowest one-byte CKA_ID no object uses (YubiKey PIV: 1-4 are slots
    9a-9e). Refused before anything is made when the label or the id is already in use."""
    on_token = token.run(inventory, f"listing the objects of token {token.name}")
    label_kinds = {kind for kind, _, found in on_token if found == label}
    if label_kinds:
        raise _taken(token, label_kinds, f"labelled {label!r}", "choose another object= label")
    if id_ is not None:
        id_kinds = {kind for kind, found, _ in on_token if found == id_}
        if id_kinds:
            hint = "leave id= out (a free one is chosen) or choose another"
            raise _taken(token, id_kinds, f"with id {id_.hex()}", hint)
        return id_
    used = {found for _, found, _ in on_token}
    for number in range(1, 256):
        if bytes([number]) not in used:
            return bytes([number])
    raise KeySourceError(
        f"every one-byte CKA_ID is taken on token {token.name}", hint="pass id= in the URI"
    )


def _taken(token: TokenSession, kinds: set[str], named: str, hint: str) -> ConfigError:
    listed = " and a ".join(sorted(kinds))
    return ConfigError(
        f"token {token.name} already has a {listed} {named}; nothing was changed",
        hint=f"{hint}, or delete the old objects first",
    )


def _reference(token: TokenSession, uri: Pkcs11Uri, id_: bytes, label: str) -> str:
    """``uri`` naming the object ``id_``/``label``: without a PIN value (a pin-source stays),
    without a type (so it names the key and its certificate), with the token's label when
    ``uri`` named no token."""
    named = replaced(uri, id=id_ or None, object=label or None, type=None)
    if not uri.selects_token:
        named = replaced(named, token=token.token.label.strip())
    return named.format()


def install_certificate(
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
    with writable(uri, pkcs11_lib) as token:
        try:
            key = select_key(token, uri, uri, None, certificate_key(leaf))
            if key.public_key is None:
                raise KeySourceError(
                    f"cannot read the public key of {key.uri(token)}, so the certificate "
                    "cannot be checked against it",
                    hint="keep the key's public key object on the token",
                )
            on_token = token.run(
                lambda s: find_certificates(s, Pkcs11Uri()), "listing certificates"
            )
            old = [
                c for c in on_token if c.certificate != leaf and _same_names(c, key.id, key.label)
            ]
            if old and not replace:
                first = old[0].certificate
                named = f"{describe(first)}, serial {first.serial_number:X}"
                raise ConfigError(
                    f"token {token.name} already has a certificate for {key.uri(token)} ({named})",
                    hint="pass --replace to put the new certificate in its place",
                )
        except (CertificateError, ConfigError, KeySourceError) as exc:
            raise type(exc)(f"{exc}; nothing was changed", hint=exc.hint) from None
        for cert, id_, label in ((leaf, key.id, key.label), *_ca_names(chain, key.id, key.label)):
            if cert not in [c.certificate for c in on_token]:
                _write(token, cert, id_, label)
        for item in old:  # only now that the new certificate is in place
            _destroy(token, item)
        return _reference(token, uri, key.id, key.label)


def _same_names(item: TokenCertificate, id_: bytes, label: str) -> bool:
    return bool((id_ and item.id == id_) or (label and item.label == label))


def _ca_names(
    chain: tuple[x509.Certificate, ...], key_id: bytes, key_label: str
) -> list[tuple[x509.Certificate, bytes, str]]:
    """Each CA with its subject key identifier as id and its CN as label, unless they would
    collide with the key's."""
    named = []
    for ca in chain:
        try:
            ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            ski = b""
        label = describe(ca).removeprefix("CN=")
        if label == key_label:
            label += " (CA)"
        named.append((ca, b"" if ski == key_id else ski, label))
    return named


def _write(token: TokenSession, cert: x509.Certificate, id_: bytes, label: str) -> None:
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
    doing = f"writing the certificate {describe(cert)} to token {token.name}"
    token.run(lambda s: s.create_object(template), doing)


def _destroy(token: TokenSession, item: TokenCertificate) -> None:
    doing = (
        f"removing the old certificate {describe(item.certificate)} from token {token.name} "
        "(the new one is in place)"
    )
    token.run(lambda s: item.handle.destroy(), doing)


__all__ = ["generate_key", "install_certificate", "writable"]
