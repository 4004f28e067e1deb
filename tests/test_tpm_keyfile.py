"""The TSS2 PRIVATE KEY format, read leniently and written strictly. No TPM needed."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from hwsigner.keys import key_kind

pytest.importorskip("tpm2_pytss")  # hwsigner.keys.tpm, the package, needs it
from hwsigner.keys.tpm.keyfile import KeyFileError, TpmKeyFile

PUBLIC = b"\x00\x04pub!"  # TPM2B framing only; the TPM checks the contents
PRIVATE = b"\x00\x05priv!"
OWNER = 0x40000001


def tlv(tag: int, value: bytes) -> bytes:
    assert len(value) < 0x100
    length = bytes([len(value)]) if len(value) < 0x80 else bytes([0x81, len(value)])
    return bytes([tag]) + length + value


LOADABLE = tlv(0x06, bytes.fromhex("6781050a0103"))  # 2.23.133.10.1.3
LEGACY = tlv(0x06, bytes.fromhex("6781050a02"))  # 2.23.133.10.2
TRUE_01 = tlv(0xA0, tlv(0x01, b"\x01"))
TRUE_FF = tlv(0xA0, tlv(0x01, b"\xff"))
FALSE = tlv(0xA0, tlv(0x01, b"\x00"))


def key_der(*fields: bytes, parent: bytes = b"\x40\x00\x00\x01") -> bytes:
    tail = tlv(0x02, parent) + tlv(0x04, PUBLIC) + tlv(0x04, PRIVATE)
    return tlv(0x30, b"".join(fields) + tail)


def pem(der: bytes, label: str = "TSS2 PRIVATE KEY") -> bytes:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode()


@pytest.mark.parametrize(
    ("fields", "empty_auth"),
    [
        ((LOADABLE, TRUE_01), True),  # what tpm2-openssl writes
        ((LOADABLE, TRUE_FF), True),  # DER
        ((LOADABLE, FALSE), False),
        ((LOADABLE,), False),  # absent means a password is needed
    ],
)
def test_empty_auth_in_each_encoding(fields: tuple[bytes, ...], empty_auth: bool) -> None:
    key = TpmKeyFile.from_pem(pem(key_der(*fields)), "k")
    assert (key.empty_auth, key.parent, key.public, key.private) == (
        empty_auth,
        OWNER,
        PUBLIC,
        PRIVATE,
    )


def test_unknown_and_newer_optional_fields_are_skipped() -> None:
    description = tlv(0xA4, tlv(0x0C, b"user@host"))
    rsa_parent = tlv(0xA5, tlv(0x01, b"\xff"))
    parent_name = tlv(0xA6, tlv(0x04, b"\x00\x0b" + bytes(32)))
    unknown = tlv(0xA9, tlv(0x05, b""))
    key = TpmKeyFile.from_pem(
        pem(key_der(LOADABLE, TRUE_01, description, rsa_parent, parent_name, unknown)), "k"
    )
    assert (key.description, key.rsa_parent, key.empty_auth) == ("user@host", True, True)


def test_text_around_the_pem_block_and_persistent_parent() -> None:
    data = b"comment\n" + pem(key_der(LOADABLE, parent=b"\x00\x81\x00\x00\x01")) + b"trailer\n"
    assert TpmKeyFile.from_pem(data, "k").parent == 0x81000001


def test_parent_zero_means_the_owner_hierarchy() -> None:
    assert TpmKeyFile.from_pem(pem(key_der(LOADABLE, parent=b"\x00")), "k").parent == OWNER


def test_legacy_oid_and_layout_of_openssl_tpm2_engine() -> None:
    # TSSLOADABLE: type, emptyAuth [0], parent [1], pubkey [2], privkey
    der = tlv(
        0x30,
        LEGACY
        + TRUE_01
        + tlv(0xA1, tlv(0x02, b"\x40\x00\x00\x01"))
        + tlv(0xA2, tlv(0x04, PUBLIC))
        + tlv(0x04, PRIVATE),
    )
    key = TpmKeyFile.from_pem(pem(der, "TSS2 KEY BLOB"), "k")
    assert (key.parent, key.public, key.private, key.empty_auth) == (OWNER, PUBLIC, PRIVATE, True)


def test_legacy_oid_in_the_current_layout() -> None:
    key = TpmKeyFile.from_pem(pem(key_der(LEGACY, TRUE_FF)), "k")
    assert (key.public, key.empty_auth) == (PUBLIC, True)


def test_policy_and_secret_are_recorded() -> None:
    policy = tlv(0xA1, tlv(0x30, b""))
    secret = tlv(0xA2, tlv(0x04, b"seed"))
    key = TpmKeyFile.from_pem(pem(key_der(LOADABLE, policy, secret)), "k")
    assert (key.has_policy, key.secret) == (True, b"seed")
    assert not TpmKeyFile.from_pem(pem(key_der(LOADABLE)), "k").has_policy


BAD = {
    "no PEM block": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    "not base64": b"-----BEGIN TSS2 PRIVATE KEY-----\n!!!!\n-----END TSS2 PRIVATE KEY-----\n",
    "not a SEQUENCE": pem(tlv(0x04, b"x")),
    "truncated": pem(key_der(LOADABLE)[:-3]),
    "trailing bytes": pem(key_der(LOADABLE) + b"\x00"),
    "wrong OID": pem(key_der(tlv(0x06, bytes.fromhex("2a864886f70d010101")))),
    "importable key": pem(key_der(tlv(0x06, bytes.fromhex("6781050a0104")))),
    "sealed data": pem(key_der(tlv(0x06, bytes.fromhex("6781050a0105")))),
    "missing privkey": pem(
        tlv(0x30, LOADABLE + tlv(0x02, b"\x40\x00\x00\x01") + tlv(0x04, PUBLIC))
    ),
    "negative parent": pem(key_der(LOADABLE, parent=b"\x80")),
    "bad TPM2B size": pem(
        tlv(0x30, LOADABLE + tlv(0x02, b"\x01") + tlv(0x04, b"\x00\x09x") + tlv(0x04, PRIVATE))
    ),
    "emptyAuth not a BOOLEAN": pem(key_der(LOADABLE, tlv(0xA0, tlv(0x02, b"\x01")))),
}


@pytest.mark.parametrize("data", BAD.values(), ids=BAD.keys())
def test_corrupt_files_are_one_clear_error(data: bytes) -> None:
    with pytest.raises(KeyFileError) as caught:
        TpmKeyFile.from_pem(data, "device.tss2")
    assert str(caught.value).startswith("device.tss2 is not a usable TSS2 PRIVATE KEY file: ")
    assert "\n" not in str(caught.value)


def test_written_strictly_and_read_back() -> None:
    key = TpmKeyFile(0x81000001, PUBLIC, PRIVATE, empty_auth=True, description="d")
    der = key.to_der()
    assert TRUE_FF in der  # TRUE as 0xFF
    assert b"\x02\x05\x00\x81\x00\x00\x01" in der  # a positive INTEGER keeps its sign octet
    assert TpmKeyFile.from_der(der, "k") == key
    assert TpmKeyFile.from_pem(key.to_pem(), "k") == key


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_openssl_parses_what_is_written() -> None:
    key = TpmKeyFile(OWNER, PUBLIC, PRIVATE, empty_auth=True)
    done = subprocess.run(
        ["openssl", "asn1parse", "-inform", "PEM"],
        input=key.to_pem(),
        capture_output=True,
        check=True,
    )
    text = done.stdout.decode()
    assert ":2.23.133.10.1.3" in text
    assert "BOOLEAN           :255" in text
    assert "INTEGER           :40000001" in text


@pytest.mark.parametrize("label", ["TSS2 PRIVATE KEY", "TSS2 KEY BLOB"])
def test_key_files_are_routed_to_the_tpm_by_content(tmp_path: Path, label: str) -> None:
    path = tmp_path / "device.key"  # the name says nothing
    path.write_bytes(pem(key_der(LOADABLE), label))
    assert key_kind(str(path)) == "tpm"
