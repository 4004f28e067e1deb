"""PKCS#10 requests built by hand and signed through the KeyBackend, checked by OpenSSL."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hwsigner.devpki import DevPki, new_key
from hwsigner.errors import ConfigError, KeySourceError
from hwsigner.keys import KeyBackend
from hwsigner.keys.file import FileKey
from hwsigner.provision.csr import build_csr, parse_sans, parse_subject

from .helpers import REPO, assert_one_line_error, run_cli

needs_openssl = pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")


def openssl_verify(path: Path) -> str:
    done = subprocess.run(
        ["openssl", "req", "-in", str(path), "-verify", "-noout"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def spki(public_key: object) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


@needs_openssl
@pytest.mark.parametrize("kind", ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"])
def test_request_verifies_with_openssl_and_carries_the_key(tmp_path: Path, kind: str) -> None:
    key = FileKey(new_key(kind))
    sans = parse_sans(["dns:device-0001.example.com", "ip:10.1.2.3", "uri:urn:device:0001"])
    request = build_csr(key, parse_subject("CN=device-0001,O=Acme"), sans)
    path = tmp_path / "device.csr"
    path.write_bytes(request.pem)
    assert "verify OK" in openssl_verify(path)
    csr = x509.load_pem_x509_csr(request.pem)
    assert spki(csr.public_key()) == spki(key.public_key)
    assert csr.subject.rfc4514_string() == "CN=device-0001,O=Acme"
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["device-0001.example.com"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    usage = csr.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    eku = csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert csr.signature_hash_algorithm is not None
    assert csr.signature_hash_algorithm.name == "sha256"


def test_request_without_sans_has_no_san_extension() -> None:
    request = build_csr(FileKey(new_key("ec-p256")), parse_subject("/O=Acme/CN=device-0002"))
    csr = x509.load_pem_x509_csr(request.pem)
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "device-0002"
    assert csr.subject.rfc4514_string() == "CN=device-0002,O=Acme"  # /O/CN order kept
    with pytest.raises(x509.ExtensionNotFound):
        csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)


class WrongKey(KeyBackend):
    """A backend that reports one public key and signs with another."""

    def __init__(self) -> None:
        self._reported, self._signer = FileKey(new_key("ec-p256")), FileKey(new_key("ec-p256"))

    @property
    def public_key(self):  # type: ignore[no-untyped-def]
        return self._reported.public_key

    def sign(self, message: bytes, digest: str = "SHA256") -> bytes:  # type: ignore[override]
        return self._signer.sign(message)


def test_a_signature_that_does_not_verify_is_caught() -> None:
    with pytest.raises(KeySourceError, match="does not verify"):
        build_csr(WrongKey(), parse_subject("CN=x"))


@pytest.mark.parametrize("subject", ["", "O=Acme", "CN", "not a name=", "/O=Acme"])
def test_bad_subjects(subject: str) -> None:
    with pytest.raises(ConfigError):
        parse_subject(subject)


@pytest.mark.parametrize("san", ["device.example", "dns:", "ip:300.1.1.1", "x400:foo"])
def test_bad_sans(san: str) -> None:
    with pytest.raises(ConfigError, match="--san"):
        parse_sans([san])


@needs_openssl
def test_cli_request_to_the_dev_pki_and_back(tmp_path: Path) -> None:
    """keygen (file) -> csr -> scripts/devpki.py issue -> a certificate for the same key."""
    key_path = tmp_path / "device.key"
    made = run_cli("keygen", "--private-key", key_path, "--algorithm", "ec-p384")
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[-1] == str(key_path)
    assert key_path.stat().st_mode & 0o777 == 0o600
    out = run_cli(
        "csr", "--private-key", key_path, "--subject", "CN=device-0003,O=Acme",
        "--san", "dns:device-0003.example.com",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    csr_path = tmp_path / "device.csr"
    csr_path.write_text(out.stdout)
    openssl_verify(csr_path)
    pki_dir = tmp_path / "pki"
    DevPki.create(pki_dir)
    cert_path = tmp_path / "device.pem"
    issued = subprocess.run(
        [sys.executable, REPO / "scripts" / "devpki.py", "issue", pki_dir, csr_path, "device-0003",
         "--out", cert_path],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    public = x509.load_pem_x509_csr(out.stdout.encode()).public_key()
    assert spki(cert.public_key()) == spki(public)


def test_cli_csr_to_a_file(tmp_path: Path) -> None:
    key_path = tmp_path / "k.key"
    assert run_cli("keygen", "--private-key", key_path).returncode == 0
    result = run_cli("csr", "--private-key", key_path, "--subject", "CN=d", "--out", tmp_path / "r")
    assert result.returncode == 0 and result.stdout == ""
    assert x509.load_pem_x509_csr((tmp_path / "r").read_bytes()).is_signature_valid


def test_cli_csr_mistakes_are_one_line(tmp_path: Path) -> None:
    key_path = tmp_path / "k.key"
    assert run_cli("keygen", "--private-key", key_path).returncode == 0
    assert_one_line_error(
        run_cli("csr", "--private-key", key_path, "--subject", "O=Acme"), "has no CN"
    )
    assert_one_line_error(
        run_cli("csr", "--private-key", key_path, "--subject", "CN=d", "--san", "smtp:x"),
        "unknown type",
    )
    assert_one_line_error(
        run_cli("csr", "--private-key", tmp_path / "missing.key", "--subject", "CN=d"),
        "not found",
    )
