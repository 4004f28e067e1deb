"""Key pairs generated inside a PKCS#11 token, whose private half can never be read out.

    >>> from hwsigner.provision.keygen_pkcs11 import generate_pkcs11_key
    >>> made = generate_pkcs11_key("pkcs11:token=dev;object=device?pin-value=1234", "ec-p256",
    ...                            pkcs11_lib="/usr/lib/softhsm/libsofthsm2.so")  # doctest: +SKIP
    >>> made.reference                                                  # doctest: +SKIP
    'pkcs11:token=dev;id=%01;object=device'

The private key is a token object (``CKA_TOKEN``), private, sensitive and not extractable, and
may only sign; the public key is a token object too, so that anyone can read it without a PIN.
Both halves carry the URI's label and the same ``CKA_ID`` (the URI's ``id``, else the lowest
free one). A label or id already on the token is refused before anything is made.
"""

from __future__ import annotations

from typing import Any

from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.util.ec import encode_named_curve_parameters

from ..errors import ConfigError, KeySourceError
from ..keys.pkcs11_find import public_key_of
from ..keys.pkcs11_module import failure
from ..keys.pkcs11_uri import Pkcs11Uri
from . import Algorithm, GeneratedKey, curve_bits
from .token_rw import WritableToken

CURVE_OIDS = {"ec-p256": "1.2.840.10045.3.1.7", "ec-p384": "1.3.132.0.34"}
URI_HINT = "name the new key with object= (its label), e.g. pkcs11:token=dev;object=device"


def key_templates(
    algorithm: Algorithm, id_: bytes, label: str
) -> tuple[dict[Attribute, Any], dict[Attribute, Any]]:
    """The public and private key templates: token objects, the private one sign-only,
    sensitive and never extractable (PKCS#11 v2.40 sections 4.8 and 4.9)."""
    common = {Attribute.TOKEN: True, Attribute.ID: id_, Attribute.LABEL: label}
    public = {
        **common,
        Attribute.CLASS: ObjectClass.PUBLIC_KEY,
        Attribute.PRIVATE: False,
        Attribute.VERIFY: True,
        Attribute.ENCRYPT: False,
        Attribute.WRAP: False,
    }
    private = {
        **common,
        Attribute.CLASS: ObjectClass.PRIVATE_KEY,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.SIGN: True,
        Attribute.DECRYPT: False,
        Attribute.UNWRAP: False,
        Attribute.DERIVE: False,
    }
    if algorithm.startswith("rsa-"):
        public[Attribute.MODULUS_BITS] = curve_bits(algorithm)
        public[Attribute.PUBLIC_EXPONENT] = b"\x01\x00\x01"
    else:
        public[Attribute.EC_PARAMS] = encode_named_curve_parameters(CURVE_OIDS[algorithm])
    return public, private


def generate_pkcs11_key(ref: str, algorithm: Algorithm, pkcs11_lib: str | None) -> GeneratedKey:
    """Make a key pair on the token ``ref`` names; return its public key and its URI."""
    uri = Pkcs11Uri.parse(ref)
    if not uri.object:
        raise ConfigError(f"{uri} names no label for the new key", hint=URI_HINT)
    if uri.type not in (None, "private"):
        raise ConfigError(f"{uri} asks for a {uri.type} object, not a key", hint=URI_HINT)
    with WritableToken.open(uri, pkcs11_lib) as token:
        refuse_taken(token, uri.object, uri.id)
        id_ = uri.id if uri.id is not None else token.free_id()
        mechanism = (
            Mechanism.RSA_PKCS_KEY_PAIR_GEN
            if algorithm.startswith("rsa-")
            else Mechanism.EC_KEY_PAIR_GEN
        )
        if int(mechanism) not in token.mechanisms():
            raise KeySourceError(
                f"token {token.name} cannot generate {algorithm} keys (no {mechanism.name})",
                hint="choose another --algorithm",
            )
        public_template, private_template = key_templates(algorithm, id_, uri.object)
        key_type = KeyType.RSA if algorithm.startswith("rsa-") else KeyType.EC
        try:
            public, _ = token.session.generate_keypair(
                key_type,
                curve_bits(algorithm) if key_type == KeyType.RSA else None,
                mechanism=mechanism,
                store=True,
                public_template=public_template,
                private_template=private_template,
            )
        except p11.PKCS11Error as exc:
            raise failure(exc, f"generating an {algorithm} key on token {token.name}") from exc
        public_key = public_key_of(token.session, public, key_type, id_)
        if public_key is None:
            raise KeySourceError(
                f"token {token.name} made the key but does not show its public key",
                hint="read it with pkcs11-tool --read-object --type pubkey",
            )
        reference = token.reference(uri, id_, uri.object)
    return GeneratedKey(public_key, reference, f"an {algorithm} key on token {token.name}")


def refuse_taken(token: WritableToken, label: str, id_: bytes | None) -> None:
    """Stop before making anything when the label (or the id) is already in use."""
    kinds = token.objects_labelled(label)
    if kinds:
        raise ConfigError(
            f"token {token.name} already has a {' and a '.join(sorted(set(kinds)))} "
            f"labelled {label!r}; nothing was changed",
            hint="choose another object= label, or delete the old objects first",
        )
    if id_ is not None:
        kinds = token.objects_with_id(id_)
        if kinds:
            raise ConfigError(
                f"token {token.name} already has a {' and a '.join(sorted(set(kinds)))} "
                f"with id {id_.hex()}; nothing was changed",
                hint="leave id= out (a free one is chosen) or choose another",
            )
