"""Key files and certificate files: every format the official helper reads, and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from hwsigner.errors import CertificateError, ConfigError, KeySourceError, PasswordError
from hwsigner.identity import load_identity
from hwsigner.keys import KeyOptions
from hwsigner.keys.file import FileKey

PEM, DER = serialization.Encoding.PEM, serialization.Encoding.DER
PKCS8 = serialization.PrivateFormat.PKCS8
TRAD = serialization.PrivateFormat.TraditionalOpenSSL
PLAIN = serialization.NoEncryption()


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def verify(key: FileKey, message: bytes) -> None:
    signature = key.sign(message)
    public_key = key.public_key
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    else:
        public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize(
    ("make", "encoding", "fmt"),
    [
        (lambda: rsa.generate_private_key(65537, 2048), PEM, TRAD),  # PKCS#1
        (lambda: ec.generate_private_key(ec.SECP256R1()), PEM, TRAD),  # SEC1
        (lambda: ec.generate_private_key(ec.SECP384R1()), PEM, PKCS8),
        (lambda: ec.generate_private_key(ec.SECP521R1()), DER, PKCS8),
    ],
    ids=["pkcs1", "sec1", "pkcs8-p384", "der-p521"],
)
def test_plain_key_formats_sign(tmp_path: Path, make, encoding, fmt) -> None:
    key = make()
    path = write(tmp_path / "k", key.private_bytes(encoding, fmt, PLAIN))
    verify(FileKey.load(path), b"message")


def test_encrypted_pkcs8_with_password(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    enc = serialization.BestAvailableEncryption(b"s3cret")
    path = write(tmp_path / "k.pem", key.private_bytes(PEM, PKCS8, enc))
    verify(FileKey.load(path, "s3cret"), b"message")
    with pytest.raises(PasswordError, match="wrong password") as caught:
        FileKey.load(path, "nope")
    assert "nope" not in str(caught.value)


def test_encrypted_key_without_terminal_names_the_flag(tmp_path: Path, monkeypatch) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    enc = serialization.BestAvailableEncryption(b"s3cret")
    path = write(tmp_path / "k.pem", key.private_bytes(PEM, PKCS8, enc))
    monkeypatch.setattr("hwsigner.keys.backend.TTY", str(tmp_path / "no-tty"))  # no terminal here
    with pytest.raises(ConfigError, match="no terminal") as caught:
        FileKey.load(path)
    assert "--pkcs8-password" in (caught.value.hint or "")
    monkeypatch.setenv("HWSIGNER_PKCS8_PASSWORD", "s3cret")
    verify(FileKey.load(path), b"message")


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        (rsa.generate_private_key(65537, 1024), "too small"),  # noqa: S505
        (ec.generate_private_key(ec.SECP256K1()), "secp256k1"),
        (ed25519.Ed25519PrivateKey.generate(), "not supported"),
    ],
    ids=["rsa-1024", "secp256k1", "ed25519"],
)
def test_unsupported_keys_are_refused(tmp_path: Path, key, needle: str) -> None:
    path = write(tmp_path / "k.pem", key.private_bytes(PEM, PKCS8, PLAIN))
    with pytest.raises(KeySourceError, match=needle):
        FileKey.load(path)


def test_garbage_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path / "k.pem", b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(KeySourceError, match="no private key"):
        FileKey.load(path)


def test_combo_pem_carries_the_key(pki, tmp_path: Path) -> None:
    cert, key = pki.new_leaf("ec-p256", "combo")
    combo = write(tmp_path / "combo.pem", cert.read_bytes() + key.read_bytes())
    identity, backend = load_identity(combo)
    assert identity.certificate.subject.rfc4514_string().startswith("CN=combo")
    assert identity.chain == ()
    verify(backend, b"m")  # type: ignore[arg-type]


@pytest.mark.parametrize("legacy", [False, True], ids=["aes", "3des"])
@pytest.mark.parametrize("password", [None, "p12pass"], ids=["no-password", "password"])
def test_pkcs12(pki, tmp_path: Path, legacy: bool, password: str | None) -> None:
    cert_path, key_path = pki.new_leaf("rsa-2048", f"p12-{legacy}-{password}")
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    issuing = x509.load_pem_x509_certificate(pki.issuing_cert.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    if password is None:
        enc: serialization.KeySerializationEncryption = PLAIN
    elif legacy:
        enc = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())  # noqa: S303 - the legacy format under test
            .build(password.encode())
        )
    else:
        enc = serialization.BestAvailableEncryption(password.encode())
    data = pkcs12.serialize_key_and_certificates(b"p12", key, cert, [issuing], enc)  # type: ignore[arg-type]
    path = write(tmp_path / "id.p12", data)
    identity, backend = load_identity(path, options=KeyOptions(pkcs8_password=password))
    assert identity.certificate == cert
    assert identity.chain == (issuing,)
    verify(backend, b"m")  # type: ignore[arg-type]
    if password:
        with pytest.raises(PasswordError, match="wrong password"):
            load_identity(path, options=KeyOptions(pkcs8_password="wrong"))


def test_key_must_match_certificate(pki) -> None:
    cert, _ = pki.new_leaf("ec-p256", "mismatch-a")
    _, other_key = pki.new_leaf("ec-p256", "mismatch-b")
    with pytest.raises(CertificateError, match="does not match"):
        load_identity(str(cert), str(other_key))


def test_leaf_is_never_in_the_chain_and_chain_is_capped(pki, tmp_path: Path) -> None:
    cert, key = pki.new_leaf("ec-p256", "chain")
    bundle = write(tmp_path / "bundle.pem", cert.read_bytes() + pki.issuing_cert.read_bytes())
    identity, _ = load_identity(str(cert), str(key), bundle)
    assert [c.subject for c in identity.chain] == [
        c.subject for c in load_identity(str(cert), str(key), str(pki.issuing_cert))[0].chain
    ]
    assert identity.certificate not in identity.chain
    six = b"".join(
        pki.issue_file(pki.issuing[1].public_key(), f"x{i}").read_bytes() for i in range(6)
    )
    with pytest.raises(ConfigError, match="at most 5"):
        load_identity(str(cert), str(key), write(tmp_path / "six.pem", six))


def test_nothing_given_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no certificate and no private key"):
        load_identity(None, None)
