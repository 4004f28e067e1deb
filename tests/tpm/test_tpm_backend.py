"""The TPM backend through the Python API, against swtpm, with keys the standard tools made."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hwsigner.errors import ConfigError, KeySourceError, PasswordError
from hwsigner.keys import KeyOptions, PublicKey, open_key
from tests.swtpm import Swtpm, free_port_pair, needs_swtpm, needs_tpm2_openssl

pytestmark = [pytest.mark.tpm, needs_swtpm]
tpm = pytest.importorskip("hwsigner.keys.tpm")
TpmKey = tpm.TpmKey
TpmDevice = tpm.TpmDevice
TpmKeyFile = tpm.TpmKeyFile
DIGESTS = ("SHA256", "SHA384", "SHA512")


def verify(public_key: PublicKey, signature: bytes, message: bytes, digest: str) -> None:
    algorithm = getattr(hashes, digest)()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, message, ec.ECDSA(algorithm))
    else:
        public_key.verify(signature, message, padding.PKCS1v15(), algorithm)


def spki(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@needs_tpm2_openssl
@pytest.mark.parametrize("kind", ["ec-p256", "ec-p384", "ec-p521", "rsa-2048"])
def test_tpm2_openssl_keys_sign_with_every_digest(
    module_swtpm: Swtpm, tmp_path: Path, kind: str
) -> None:
    path = module_swtpm.openssl_key(tmp_path / f"{kind}.tss2", kind)
    expected = module_swtpm.openssl_public_key(path)  # before: swtpm has only 3 object slots
    with open_key(str(path), KeyOptions(tpm_tcti=module_swtpm.tcti)) as key:
        assert spki(key.public_key) == spki(expected)
        for digest in DIGESTS:
            message = f"message for {digest}".encode()
            verify(key.public_key, key.sign(message, digest), message, digest)  # type: ignore[arg-type]
    assert module_swtpm.transient_handles() == []


@needs_tpm2_openssl
def test_many_signatures_create_the_primary_once(module_swtpm: Swtpm, tmp_path: Path) -> None:
    path = module_swtpm.openssl_key(tmp_path / "k.tss2", "ec-p256")
    with TpmKey.open(str(path), KeyOptions(tpm_tcti=module_swtpm.tcti)) as key:
        for n in range(25):
            verify(key.public_key, key.sign(b"%d" % n), b"%d" % n, "SHA256")
        counters = key.counters
    assert (counters.primaries_created, counters.keys_loaded, counters.signatures) == (1, 1, 25)
    assert module_swtpm.transient_handles() == []


@needs_tpm2_openssl
def test_keys_sharing_a_device_share_its_primary(module_swtpm: Swtpm, tmp_path: Path) -> None:
    options = KeyOptions(tpm_tcti=module_swtpm.tcti)
    paths = [module_swtpm.openssl_key(tmp_path / f"{n}.tss2", "ec-p256") for n in range(2)]
    with TpmDevice.open(module_swtpm.tcti) as device:
        keys = [TpmKey.open(str(path), options, device) for path in paths]
        for key in keys:
            verify(key.public_key, key.sign(b"m"), b"m", "SHA256")
        assert (device.counters.primaries_created, device.counters.keys_loaded) == (1, 2)
        for key in keys:
            key.close()
        assert module_swtpm.transient_handles() != []  # the primary stays while the device is open
    assert module_swtpm.transient_handles() == []


@needs_tpm2_openssl
def test_keys_opened_in_one_process_share_the_primary(module_swtpm: Swtpm, tmp_path: Path) -> None:
    options = KeyOptions(tpm_tcti=module_swtpm.tcti)
    paths = [module_swtpm.openssl_key(tmp_path / f"{n}.tss2", "ec-p256") for n in range(2)]
    first = open_key(str(paths[0]), options)
    second = open_key(str(paths[1]), options)
    assert first.counters is second.counters  # type: ignore[attr-defined]
    assert first.counters.primaries_created == 1  # type: ignore[attr-defined]
    assert len(module_swtpm.transient_handles()) == 3  # one primary, two keys
    first.close()
    assert len(module_swtpm.transient_handles()) == 2  # the primary stays for the second key
    verify(second.public_key, second.sign(b"m"), b"m", "SHA256")
    second.close()
    assert module_swtpm.transient_handles() == []
    with open_key(str(paths[0]), options) as again:  # a new connection after the last release
        assert again.counters.primaries_created == 1  # type: ignore[attr-defined]
        assert again.counters is not first.counters  # type: ignore[attr-defined]


@needs_tpm2_openssl
@pytest.mark.parametrize("how", ["flag", "environment"])
def test_key_with_a_password(
    module_swtpm: Swtpm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    path = module_swtpm.openssl_key(tmp_path / "pw.tss2", "ec-p256", password="s3cret pw")
    if how == "flag":
        options = KeyOptions(tpm_tcti=module_swtpm.tcti, tpm_key_password="s3cret pw")
    else:
        monkeypatch.setenv("HWSIGNER_TPM_KEY_PASSWORD", "s3cret pw")
        options = KeyOptions(tpm_tcti=module_swtpm.tcti)
    with open_key(str(path), options) as key:
        verify(key.public_key, key.sign(b"m"), b"m", "SHA256")
        verify(key.public_key, key.sign(b"n"), b"n", "SHA256")  # the session continues
        assert key.counters.sessions_started == 1  # type: ignore[attr-defined]
    assert module_swtpm.loaded_sessions() == []
    assert module_swtpm.transient_handles() == []


@needs_tpm2_openssl
def test_key_under_a_persistent_parent(module_swtpm: Swtpm, tmp_path: Path) -> None:
    module_swtpm.storage_primary(tmp_path, persistent=0x81000001)
    path = module_swtpm.openssl_key(tmp_path / "k.tss2", "ec-p256", parent=0x81000001)
    with open_key(str(path), KeyOptions(tpm_tcti=module_swtpm.tcti)) as key:
        verify(key.public_key, key.sign(b"m"), b"m", "SHA256")
        assert key.counters.primaries_created == 0  # type: ignore[attr-defined]
    assert module_swtpm.transient_handles() == []


@pytest.mark.parametrize(
    ("kind", "ref"), [("ecc256", "handle:0x81000010"), ("rsa2048", "handle:81000011")]
)
def test_persistent_key_made_by_tpm2_tools(
    module_swtpm: Swtpm, tmp_path: Path, kind: str, ref: str
) -> None:
    public_key = module_swtpm.persistent_key(int(ref[-8:], 16), tmp_path, kind)
    options = KeyOptions(tpm_tcti=module_swtpm.tcti, no_tpm_key_password=True)
    with open_key(ref, options) as key:
        assert spki(key.public_key) == spki(public_key)
        verify(key.public_key, key.sign(b"m", "SHA384"), b"m", "SHA384")
    assert module_swtpm.transient_handles() == []
    assert f"0x{ref[-8:]}" in module_swtpm.run("tpm2_getcap", "handles-persistent")


def test_persistent_key_with_a_password(module_swtpm: Swtpm, tmp_path: Path) -> None:
    module_swtpm.persistent_key(0x81000012, tmp_path, "ecc256", password="pp 12")
    options = KeyOptions(tpm_tcti=module_swtpm.tcti, tpm_key_password="pp 12")
    with open_key("handle:0x81000012", options) as key:
        verify(key.public_key, key.sign(b"m"), b"m", "SHA256")
    assert module_swtpm.loaded_sessions() == []


@needs_tpm2_openssl
def test_legacy_key_blob_layout(module_swtpm: Swtpm, tmp_path: Path) -> None:
    """openssl_tpm2_engine's first format: OID 2.23.133.10.2, parent [1], pubkey [2]."""
    current = TpmKeyFile.load(str(module_swtpm.openssl_key(tmp_path / "k.tss2", "ec-p256")))

    def tlv(tag: int, value: bytes) -> bytes:
        return (
            bytes([tag, 0x81, len(value)]) + value
            if len(value) > 0x7F
            else bytes([tag, len(value)]) + value
        )

    der = tlv(0x30, b"".join([
        tlv(0x06, bytes.fromhex("6781050a02")),
        tlv(0xA0, tlv(0x01, b"\x01")),
        tlv(0xA1, tlv(0x02, b"\x40\x00\x00\x01")),
        tlv(0xA2, tlv(0x04, current.public)),
        tlv(0x04, current.private),
    ]))  # fmt: skip
    legacy = tmp_path / "legacy.key"
    body = base64.encodebytes(der).decode()
    legacy.write_text(f"-----BEGIN TSS2 KEY BLOB-----\n{body}-----END TSS2 KEY BLOB-----\n")
    with open_key(str(legacy), KeyOptions(tpm_tcti=module_swtpm.tcti)) as key:
        verify(key.public_key, key.sign(b"m"), b"m", "SHA256")


def test_tpm2_encodeobject_file(module_swtpm: Swtpm, tmp_path: Path) -> None:
    path = module_swtpm.encoded_key(tmp_path, "tools", "ecc384")
    options = KeyOptions(tpm_tcti=module_swtpm.tcti, no_tpm_key_password=True)
    with open_key(str(path), options) as key:
        verify(key.public_key, key.sign(b"m"), b"m", "SHA256")


def test_tpm2_encodeobject_password_wins_over_an_inverted_empty_auth(
    module_swtpm: Swtpm, tmp_path: Path
) -> None:
    # tpm2-tools 5.7 and older mark a key with a password as emptyAuth; newer ones do not.
    path = module_swtpm.encoded_key(tmp_path, "tools-pw", "rsa2048", password="pw123")
    options = KeyOptions(tpm_tcti=module_swtpm.tcti, tpm_key_password="pw123")
    with open_key(str(path), options) as key:
        verify(key.public_key, key.sign(b"m"), b"m", "SHA256")


@needs_tpm2_openssl
def test_owner_hierarchy_with_a_password(
    swtpm: Swtpm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = swtpm.openssl_key(tmp_path / "k.tss2", "ec-p256")
    swtpm.tool("tpm2_changeauth", "-c", "o", "owner secret")
    options = KeyOptions(tpm_tcti=swtpm.tcti)
    with pytest.raises(PasswordError, match="storage primary") as caught:
        open_key(str(path), options)
    assert "HWSIGNER_TPM_PARENT_PASSWORD" in str(caught.value.hint)
    monkeypatch.setenv("HWSIGNER_TPM_PARENT_PASSWORD", "owner secret")
    with open_key(str(path), options) as key:
        verify(key.public_key, key.sign(b"m"), b"m", "SHA256")
    assert swtpm.transient_handles() == []


@needs_tpm2_openssl
def test_wrong_password_is_reported_once_and_never_retried(swtpm: Swtpm, tmp_path: Path) -> None:
    path = swtpm.openssl_key(tmp_path / "pw.tss2", "ec-p256", password="correct-horse")
    key = open_key(str(path), KeyOptions(tpm_tcti=swtpm.tcti, tpm_key_password="bad-guess-42"))
    with key, pytest.raises(PasswordError) as first:
        key.sign(b"m")
    message = str(first.value)
    assert message.startswith(f"wrong password for TPM key {path} (password from --tpm-")
    hint = str(first.value.hint)
    assert "dictionary-attack lockout" in hint
    assert "horse" not in message + hint and "guess" not in message + hint
    with pytest.raises(PasswordError):
        key.sign(b"m")  # reported again without asking the TPM
    assert swtpm.lockout_counter() == 1
    assert swtpm.transient_handles() == []
    assert swtpm.loaded_sessions() == []


def test_no_terminal_for_the_password_prompt(module_swtpm: Swtpm, tmp_path: Path) -> None:
    path = module_swtpm.encoded_key(tmp_path, "k")  # tpm2-tools 5.7 and older: "needs a password"
    if TpmKeyFile.load(str(path)).empty_auth:
        pytest.skip("this tpm2_encodeobject marks the key emptyAuth; nothing would be asked")
    with pytest.raises(ConfigError, match="no terminal"):
        open_key(str(path), KeyOptions(tpm_tcti=module_swtpm.tcti))
    assert module_swtpm.transient_handles() == []


@needs_tpm2_openssl
def test_unreachable_tpm_names_the_tcti(module_swtpm: Swtpm, tmp_path: Path) -> None:
    path = module_swtpm.openssl_key(tmp_path / "k.tss2", "ec-p256")
    tcti = f"swtpm:host=127.0.0.1,port={free_port_pair()}"
    with pytest.raises(KeySourceError, match="cannot reach the TPM through TCTI") as caught:
        open_key(str(path), KeyOptions(tpm_tcti=tcti))
    assert tcti in str(caught.value)


@needs_tpm2_openssl
def test_key_from_another_tpm(module_swtpm: Swtpm, swtpm: Swtpm, tmp_path: Path) -> None:
    path = module_swtpm.openssl_key(tmp_path / "k.tss2", "ec-p256")
    with pytest.raises(KeySourceError, match="made by another TPM"):
        open_key(str(path), KeyOptions(tpm_tcti=swtpm.tcti))
    assert swtpm.transient_handles() == []  # the primary made for the attempt is flushed


def test_missing_persistent_handle(module_swtpm: Swtpm) -> None:
    options = KeyOptions(tpm_tcti=module_swtpm.tcti, no_tpm_key_password=True)
    with pytest.raises(KeySourceError, match="nothing at handle 0x81000fff"):
        open_key("handle:0x81000fff", options)


@pytest.mark.parametrize("ref", ["handle:0x80000001", "handle:xyz", "handle:0x8100000001"])
def test_malformed_handles(ref: str) -> None:
    with pytest.raises(ConfigError, match="not a persistent TPM handle"):
        open_key(ref, KeyOptions(tpm_tcti="swtpm:host=127.0.0.1,port=1"))


def test_garbage_inside_a_well_formed_file(module_swtpm: Swtpm, tmp_path: Path) -> None:
    path = tmp_path / "garbage.tss2"
    path.write_bytes(TpmKeyFile(0x40000001, b"\x00\x03abc", b"\x00\x00", empty_auth=True).to_pem())
    with pytest.raises(KeySourceError, match="not a usable TSS2 PRIVATE KEY file"):
        open_key(str(path), KeyOptions(tpm_tcti=module_swtpm.tcti))
    assert module_swtpm.transient_handles() == []
