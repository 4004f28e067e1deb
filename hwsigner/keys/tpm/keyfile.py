"""TPM key files: the ``TSS2 PRIVATE KEY`` PEM format that tpm2-openssl and tpm2-tools write.

    >>> from hwsigner.keys.tpm.keyfile import TpmKeyFile
    >>> keyfile = TpmKeyFile(parent=0x40000001, public=b"\\x00\\x00", private=b"\\x00\\x00",
    ...                      empty_auth=True)
    >>> TpmKeyFile.from_pem(keyfile.to_pem(), "key.tss2") == keyfile
    True

The ASN.1 (draft-bottomley-tpm2-keys)::

    TPMKey ::= SEQUENCE {
        type        OBJECT IDENTIFIER,               -- 2.23.133.10.1.3: a loadable key
        emptyAuth   [0] EXPLICIT BOOLEAN OPTIONAL,
        policy      [1] EXPLICIT SEQUENCE OF TPMPolicy OPTIONAL,
        secret      [2] EXPLICIT OCTET STRING OPTIONAL,
        authPolicy  [3] EXPLICIT SEQUENCE OF TPMAuthPolicy OPTIONAL,
        description [4] EXPLICIT UTF8String OPTIONAL,
        rsaParent   [5] EXPLICIT BOOLEAN OPTIONAL,
        parent      INTEGER,                         -- a hierarchy or a persistent handle
        pubkey      OCTET STRING,                    -- a marshalled TPM2B_PUBLIC
        privkey     OCTET STRING }                   -- a marshalled TPM2B_PRIVATE

Read leniently, as the engines that wrote these files behaved: BOOLEAN TRUE as 0x01 (which DER
forbids, and tpm2-openssl writes) or 0xFF, unknown optional fields skipped, and the older
``TSS2 KEY BLOB`` layout of openssl_tpm2_engine (OID 2.23.133.10.2, where parent and pubkey are
tagged [1] and [2]). Written strictly: DER, the current OID, TRUE as 0xFF.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from ..._safe import read_user_file
from ...errors import KeySourceError

LOADABLE_KEY_OID = "2.23.133.10.1.3"
LEGACY_LOADABLE_KEY_OID = "2.23.133.10.2"
IMPORTABLE_KEY_OID = "2.23.133.10.1.4"
SEALED_DATA_OID = "2.23.133.10.1.5"
OWNER_HIERARCHY = 0x40000001

PEM_RE = re.compile(
    rb"-----BEGIN (TSS2 PRIVATE KEY|TSS2 KEY BLOB)-----(.*?)-----END \1-----", re.DOTALL
)

SEQUENCE, OID, BOOLEAN, INTEGER, OCTET_STRING, UTF8_STRING = 0x30, 0x06, 0x01, 0x02, 0x04, 0x0C
CONTEXT = 0xA0  # constructed, context-specific: [n] EXPLICIT is CONTEXT | n


class KeyFileError(KeySourceError):
    """A TPM key file that cannot be read; ``str`` names the file and the reason."""


@dataclass(frozen=True, slots=True)
class TpmKeyFile:
    """A TPM-wrapped key: its parent, public area and wrapped private area, as the file holds them.

    ``public`` and ``private`` keep their 2-byte size prefix (they are TPM2B structures).
    """

    parent: int
    public: bytes
    private: bytes
    empty_auth: bool = False
    description: str | None = None
    rsa_parent: bool = False
    oid: str = LOADABLE_KEY_OID
    has_policy: bool = False
    secret: bytes | None = None

    @classmethod
    def load(cls, path: str) -> TpmKeyFile:
        data = read_user_file(path, "TPM key", "--private-key")
        return cls.from_pem(data, path)

    @classmethod
    def from_pem(cls, data: bytes, source: str) -> TpmKeyFile:
        match = PEM_RE.search(data)
        if match is None:
            raise _bad(source, "no complete TSS2 PRIVATE KEY PEM block")
        try:
            der = base64.b64decode(b"".join(match.group(2).split()), validate=True)
        except (binascii.Error, ValueError):
            raise _bad(source, "the PEM block is not valid base64") from None
        return cls.from_der(der, source)

    @classmethod
    def from_der(cls, der: bytes, source: str) -> TpmKeyFile:
        try:
            return _parse(der)
        except _Malformed as exc:
            raise _bad(source, str(exc)) from None

    def to_der(self) -> bytes:
        fields = [_tlv(OID, encode_oid(LOADABLE_KEY_OID))]
        if self.empty_auth:
            fields.append(_tlv(CONTEXT | 0, _tlv(BOOLEAN, b"\xff")))
        if self.description is not None:
            fields.append(_tlv(CONTEXT | 4, _tlv(UTF8_STRING, self.description.encode())))
        if self.rsa_parent:
            fields.append(_tlv(CONTEXT | 5, _tlv(BOOLEAN, b"\xff")))
        fields += [
            _tlv(INTEGER, encode_unsigned(self.parent)),
            _tlv(OCTET_STRING, self.public),
            _tlv(OCTET_STRING, self.private),
        ]
        return _tlv(SEQUENCE, b"".join(fields))

    def to_pem(self) -> bytes:
        body = base64.encodebytes(self.to_der()).replace(b"\n", b"")
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return b"\n".join(
            [b"-----BEGIN TSS2 PRIVATE KEY-----", *lines, b"-----END TSS2 PRIVATE KEY-----", b""]
        )


class _Malformed(KeyFileError):
    """What is wrong inside the DER; ``from_der`` turns it into a KeyFileError naming the file."""


def _bad(source: str, reason: str) -> KeyFileError:
    return KeyFileError(
        f"{source} is not a usable TSS2 PRIVATE KEY file: {reason}",
        hint="give a key file written by tpm2-openssl, tpm2_encodeobject or hwsigner keygen",
    )


def _parse(der: bytes) -> TpmKeyFile:
    tag, body, rest = _read(der)
    if tag != SEQUENCE or rest:
        raise _Malformed("it is not one ASN.1 SEQUENCE")
    tag, value, body = _read(body)
    if tag != OID:
        raise _Malformed("it does not start with an OBJECT IDENTIFIER")
    oid = decode_oid(value)
    if oid == IMPORTABLE_KEY_OID:
        raise _Malformed("it is an importable key; import it into the TPM first (tpm2_import)")
    if oid == SEALED_DATA_OID:
        raise _Malformed("it holds sealed data, not a signing key")
    if oid not in (LOADABLE_KEY_OID, LEGACY_LOADABLE_KEY_OID):
        raise _Malformed(f"unknown key type {oid}")
    tagged: dict[int, bytes] = {}
    while body and body[0] & 0xE0 == CONTEXT:
        tag, value, body = _read(body)
        tagged[tag & 0x1F] = value
    plain: list[tuple[int, bytes]] = []
    while body:
        tag, value, body = _read(body)
        plain.append((tag, value))
    tags = [tag for tag, _ in plain]
    parent: bytes | None
    public: bytes | None
    if tags == [INTEGER, OCTET_STRING, OCTET_STRING]:
        parent, public, private = (value for _, value in plain)
        legacy = False
    elif tags == [OCTET_STRING] and oid == LEGACY_LOADABLE_KEY_OID:
        # openssl_tpm2_engine's first layout: parent [1] and pubkey [2], privkey untagged
        parent, public, private = (
            _inner(tagged, 1, INTEGER),
            _inner(tagged, 2, OCTET_STRING),
            plain[0][1],
        )
        legacy = True
    else:
        raise _Malformed("it lacks the parent, pubkey and privkey fields")
    if public is None:
        raise _Malformed("it has no pubkey field")
    _check_tpm2b(public, "pubkey")
    _check_tpm2b(private, "privkey")
    handle = decode_unsigned(parent) if parent is not None else OWNER_HIERARCHY
    if handle > 0xFFFFFFFF:
        raise _Malformed("the parent is not a 32-bit TPM handle")
    description = None if legacy else _inner(tagged, 4, UTF8_STRING)
    return TpmKeyFile(
        # tpm2-openssl reads a parent of 0 as the owner hierarchy; so do we
        parent=handle or OWNER_HIERARCHY,
        public=public,
        private=private,
        empty_auth=_flag(tagged, 0),
        description=description.decode(errors="replace") if description is not None else None,
        rsa_parent=False if legacy else _flag(tagged, 5),
        oid=oid,
        has_policy=(3 in tagged) if legacy else (1 in tagged or 3 in tagged),
        secret=None if legacy else _inner(tagged, 2, OCTET_STRING),
    )


def _inner(tagged: dict[int, bytes], number: int, expected: int) -> bytes | None:
    """The value inside ``[number] EXPLICIT``, which must have the ``expected`` tag."""
    if number not in tagged:
        return None
    tag, value, rest = _read(tagged[number])
    if tag != expected or rest:
        raise _Malformed(f"field [{number}] has the wrong type")
    return value


def _flag(tagged: dict[int, bytes], number: int) -> bool:
    value = _inner(tagged, number, BOOLEAN)
    if value is None:
        return False
    if len(value) != 1:
        raise _Malformed(f"field [{number}] is not a BOOLEAN")
    return value != b"\x00"  # DER says 0xFF; tpm2-openssl and older engines write 0x01


def _check_tpm2b(value: bytes, name: str) -> None:
    if len(value) < 2 or int.from_bytes(value[:2], "big") != len(value) - 2:
        raise _Malformed(f"the {name} field is not a TPM2B structure (its size prefix is wrong)")


def _read(data: bytes) -> tuple[int, bytes, bytes]:
    """One DER TLV: ``(tag, value, what follows)``."""
    if len(data) < 2:
        raise _Malformed("it is truncated")
    tag, length, offset = data[0], data[1], 2
    if tag & 0x1F == 0x1F:
        raise _Malformed("it uses a multi-byte ASN.1 tag")
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or len(data) < 2 + count:
            raise _Malformed("it has a bad ASN.1 length")
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    if len(data) < offset + length:
        raise _Malformed("it is truncated")
    return tag, data[offset : offset + length], data[offset + length :]


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + value


def encode_unsigned(number: int) -> bytes:
    """A non-negative INTEGER's content octets: big-endian, with a 0x00 if the top bit is set."""
    return number.to_bytes(number.bit_length() // 8 + 1, "big")


def decode_unsigned(value: bytes) -> int:
    if not value or value[0] & 0x80:
        raise _Malformed("the parent is not a non-negative INTEGER")
    return int.from_bytes(value, "big")


def encode_oid(dotted: str) -> bytes:
    first, second, *rest = (int(arc) for arc in dotted.split("."))
    out = bytearray()
    for arc in (40 * first + second, *rest):
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        out += bytes(reversed(chunk))
    return bytes(out)


def decode_oid(value: bytes) -> str:
    arcs, arc = [], 0
    for byte in value:
        arc = (arc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(arc)
            arc = 0
    if not arcs or value[-1] & 0x80:
        raise _Malformed("its OBJECT IDENTIFIER is malformed")
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))


__all__ = [
    "KeyFileError", "TpmKeyFile", "decode_oid", "decode_unsigned", "encode_oid", "encode_unsigned",
]  # fmt: skip
