"""scripts/devpki.py issue: certificate requests as each tool writes them, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hwsigner.devpki import DevPki
from hwsigner.provision.csr import load_csr

from .helpers import REPO
from .swtpm import Swtpm, needs_swtpm, needs_tpm2_openssl

ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
ECDSA_SHA256_NULL = bytes.fromhex("300c06082a8648ce3d0403020500")


def request(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "device-0001")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


def with_null_parameter(der: bytes) -> bytes:
    """The request as tpm2-openssl writes it: ecdsa-with-SHA256 followed by a NULL."""
    assert der.count(ECDSA_SHA256) == 1
    body = der[2 + (der[1] & 0x7F if der[1] & 0x80 else 0) :].replace(
        ECDSA_SHA256, ECDSA_SHA256_NULL
    )
    length = len(body).to_bytes(2 if len(body) > 255 else 1, "big")
    return b"\x30" + (bytes([0x80 | len(length)]) if len(body) > 127 else b"") + length + body


def devpki(*args: str | Path) -> subprocess.CompletedProcess[str]:
    script = REPO / "scripts" / "devpki.py"
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)], capture_output=True, text=True
    )


def test_an_ec_request_with_a_null_parameter_is_read_and_checked() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    odd = with_null_parameter(request(key))
    with pytest.raises(ValueError):
        x509.load_der_x509_csr(odd)  # what cryptography alone does with it
    assert load_csr(odd, "odd.csr").public_key() == key.public_key()


def test_a_tampered_request_is_refused(tmp_path: Path, pki: DevPki) -> None:
    der = bytearray(with_null_parameter(request(ec.generate_private_key(ec.SECP256R1()))))
    der[-5] ^= 1  # inside the signature
    (tmp_path / "bad.csr").write_bytes(bytes(der))
    result = devpki("issue", pki.directory, tmp_path / "bad.csr", "x")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("devpki: ") and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "content", [b"not a request", b"-----BEGIN CERTIFICATE REQUEST-----\n!!\n"]
)
def test_unreadable_input_is_one_line(tmp_path: Path, pki: DevPki, content: bytes) -> None:
    (tmp_path / "x.csr").write_bytes(content)
    result = devpki("issue", pki.directory, tmp_path / "x.csr", "x")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_pem_requests_of_both_key_types_are_issued(tmp_path: Path, pki: DevPki, kind: str) -> None:
    key = (
        ec.generate_private_key(ec.SECP384R1())
        if kind == "ec"
        else rsa.generate_private_key(65537, 2048)
    )
    csr = x509.load_der_x509_csr(request(key))
    (tmp_path / "r.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    result = devpki("issue", pki.directory, tmp_path / "r.csr", "d", "--out", tmp_path / "d.pem")
    assert result.returncode == 0, result.stderr
    issued = x509.load_pem_x509_certificate((tmp_path / "d.pem").read_bytes())
    assert issued.public_key() == key.public_key()


@pytest.mark.tpm
@needs_swtpm
@needs_tpm2_openssl
def test_the_request_tpm2_openssl_writes_is_issued(tmp_path: Path, pki: DevPki) -> None:
    """docs/tpm.md's line: ``openssl req -provider tpm2`` on an EC key, then devpki issue."""
    with Swtpm.running(tmp_path / "tpm") as tpm:
        key_file = tpm.openssl_key(tmp_path / "device.tss2", "ec-p256")
        subprocess.run(
            ["openssl", "req", "-provider", "tpm2", "-provider", "default", "-new",
             "-key", str(key_file), "-subj", "/CN=device-0001", "-out", str(tmp_path / "d.csr")],
            check=True, env={**os.environ, **tpm.env}, capture_output=True,
        )  # fmt: skip
        result = devpki(
            "issue", pki.directory, tmp_path / "d.csr", "d", "--out", tmp_path / "d.pem"
        )
        assert result.returncode == 0, result.stderr
        issued = x509.load_pem_x509_certificate((tmp_path / "d.pem").read_bytes())
        assert issued.public_key() == tpm.openssl_public_key(key_file)
