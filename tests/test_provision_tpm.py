"""The factory flow on a TPM (swtpm): keygen --tpm -> csr -> the dev CA -> credential-process.

The key file hwsigner writes must load in tpm2-openssl (``openssl pkey -provider tpm2``), the
other implementation of the ``TSS2 PRIVATE KEY`` format; persistent keys are listed by tpm2-tools.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hwsigner.devpki import DevPki

from .conftest import RunningEmulator
from .helpers import ARN_FLAGS, assert_one_line_error, process_credentials, run_cli
from .swtpm import Swtpm, needs_swtpm, needs_tpm2_openssl

pytestmark = [pytest.mark.tpm, needs_swtpm]


@pytest.fixture(scope="module")
def tpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swtpm]:
    with Swtpm.running(tmp_path_factory.mktemp("swtpm")) as running:
        yield running


def spki(public_key: object) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


def hwsigner(tpm: Swtpm, command: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_cli(command, "--tpm-tcti", tpm.tcti, *args)


def keygen(tpm: Swtpm, ref: str | Path, *extra: str) -> tuple[object, str]:
    result = hwsigner(tpm, "keygen", "--private-key", ref, *extra)
    assert result.returncode == 0, result.stderr
    body, _, reference = result.stdout.rstrip("\n").rpartition("\n")
    return serialization.load_pem_public_key(body.encode()), reference


def csr_public_key(tpm: Swtpm, ref: str, *extra: str) -> object:
    result = hwsigner(tpm, "csr", "--private-key", ref, "--subject", "CN=tpm-device", *extra)
    assert result.returncode == 0, result.stderr
    request = x509.load_pem_x509_csr(result.stdout.encode())
    assert request.is_signature_valid
    return request.public_key()


@needs_tpm2_openssl
@pytest.mark.parametrize("algorithm", ["ec-p256", "ec-p384", "rsa-2048"])
def test_tss2_key_loads_in_tpm2_openssl_and_signs_its_csr(
    tpm: Swtpm, tmp_path: Path, algorithm: str
) -> None:
    path = tmp_path / f"{algorithm}.tss2"
    public_key, reference = keygen(tpm, path, "--tpm", "--algorithm", algorithm)
    assert reference == str(path)
    assert path.read_bytes().startswith(b"-----BEGIN TSS2 PRIVATE KEY-----")
    assert path.stat().st_mode & 0o777 == 0o600
    assert spki(tpm.openssl_public_key(path)) == spki(public_key)
    assert spki(csr_public_key(tpm, str(path))) == spki(public_key)
    assert tpm.transient_handles() == []


@needs_tpm2_openssl
def test_key_with_a_password(tpm: Swtpm, tmp_path: Path) -> None:
    path = tmp_path / "secret.tss2"
    public_key, _ = keygen(tpm, path, "--tpm", "--tpm-key-password", "pass phrase")
    assert spki(tpm.openssl_public_key(path, "pass phrase")) == spki(public_key)
    signed = csr_public_key(tpm, str(path), "--tpm-key-password", "pass phrase")
    assert spki(signed) == spki(public_key)
    wrong = hwsigner(
        tpm, "csr", "--private-key", path, "--subject", "CN=x", "--tpm-key-password", "wrong"
    )
    assert_one_line_error(wrong, "wrong password")


def test_factory_flow_then_credential_process(
    tpm: Swtpm, pki: DevPki, emulator: RunningEmulator, tmp_path: Path
) -> None:
    key = tmp_path / "device.tss2"
    public_key, _ = keygen(tpm, key, "--tpm")
    request = hwsigner(
        tpm, "csr", "--private-key", key, "--subject", "CN=tpm-0001,O=Acme",
        "--out", tmp_path / "device.csr",
    )  # fmt: skip
    assert request.returncode == 0, request.stderr
    csr = x509.load_pem_x509_csr((tmp_path / "device.csr").read_bytes())
    issued = pki.issue_file(csr.public_key(), "tpm-0001", tmp_path / "issued.pem")  # type: ignore[arg-type]
    cert = tmp_path / "device.pem"
    installed = hwsigner(
        tpm, "import-cert", "--certificate", issued, "--chain", pki.issuing_cert,
        "--private-key", key, "--out", cert,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.strip() == str(cert)
    assert cert.read_text().count("BEGIN CERTIFICATE") == 2  # the leaf and the issuing CA
    result = hwsigner(
        tpm, "credential-process", "--certificate", cert, "--private-key", key,
        *ARN_FLAGS, "--endpoint", emulator.url,
    )  # fmt: skip
    assert str(process_credentials(result)["AccessKeyId"]).startswith("ASIA")
    doctor = hwsigner(
        tpm, "doctor", "--certificate", cert, "--private-key", key,
        "--trust-anchor-cert", pki.root_cert, *ARN_FLAGS, "--endpoint", emulator.url, "--online",
    )  # fmt: skip
    assert doctor.returncode == 0, doctor.stdout
    assert tpm.transient_handles() == []
    assert spki(public_key) == spki(csr.public_key())


def test_import_cert_for_another_key_writes_nothing(
    tpm: Swtpm, pki: DevPki, tmp_path: Path
) -> None:
    key = tmp_path / "device.tss2"
    keygen(tpm, key, "--tpm")
    other, _ = pki.new_leaf("ec-p256", "not-the-tpm-key")
    out = tmp_path / "cert.pem"
    result = hwsigner(
        tpm, "import-cert", "--certificate", other, "--private-key", key, "--out", out
    )
    assert_one_line_error(result, "is not the key's", "nothing was changed")
    assert not out.exists()


def test_persistent_handle_and_refusals(tpm: Swtpm, tmp_path: Path) -> None:
    public_key, reference = keygen(tpm, "handle:0x81000123", "--algorithm", "ec-p384")
    assert reference == "handle:0x81000123"
    assert "0x81000123" in tpm.run("tpm2_getcap", "handles-persistent")
    signed = csr_public_key(tpm, reference, "--no-tpm-key-password")
    assert spki(signed) == spki(public_key)
    again = hwsigner(tpm, "keygen", "--private-key", "handle:0x81000123")
    assert_one_line_error(again, "already holds a key at handle 0x81000123", "nothing was changed")
    existing = tmp_path / "exists.tss2"
    existing.write_text("keep me")
    refused = hwsigner(tpm, "keygen", "--tpm", "--private-key", existing)
    assert_one_line_error(refused, "already exists")
    assert existing.read_text() == "keep me"
    assert tpm.transient_handles() == []
