"""keygen and import-cert with software key files: the development path of the factory flow."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hwsigner.devpki import DevPki, pem

from .conftest import RunningEmulator
from .helpers import ARN_FLAGS, REPO, assert_one_line_error, process_credentials, run_cli


def keygen(path: Path, *extra: str) -> object:
    result = run_cli("keygen", "--private-key", path, *extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == str(path)
    assert result.stderr.startswith("hwsigner: created a software ")
    body = result.stdout.rstrip("\n").rpartition("\n")[0]
    return serialization.load_pem_public_key(body.encode())


def test_keygen_algorithms_and_file_mode(tmp_path: Path) -> None:
    for algorithm, kind, size in (
        ("ec-p256", ec.EllipticCurvePublicKey, 256),
        ("ec-p384", ec.EllipticCurvePublicKey, 384),
        ("rsa-3072", rsa.RSAPublicKey, 3072),
    ):
        path = tmp_path / f"{algorithm}.key"
        public_key = keygen(path, "--algorithm", algorithm)
        assert isinstance(public_key, kind) and public_key.key_size == size
        assert path.stat().st_mode & 0o777 == 0o600
        loaded = serialization.load_pem_private_key(path.read_bytes(), None)
        assert loaded.public_key().public_numbers() == public_key.public_numbers()  # type: ignore[attr-defined]


def test_keygen_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    keygen(path)
    before = path.read_bytes()
    assert_one_line_error(run_cli("keygen", "--private-key", path), "already exists")
    assert path.read_bytes() == before
    bad = run_cli("keygen", "--private-key", tmp_path / "x.key", "--algorithm", "ec-p192")
    assert bad.returncode == 1 and "invalid choice" in bad.stderr


def test_import_cert_writes_leaf_and_intermediates(
    pki: DevPki, emulator: RunningEmulator, tmp_path: Path
) -> None:
    key = tmp_path / "device.key"
    public_key = keygen(key)
    issued = pki.issue_file(public_key, "file-device", tmp_path / "issued.pem")  # type: ignore[arg-type]
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pem(pki.issuing[0]) + pem(pki.root[0]))
    out = tmp_path / "device.pem"
    result = run_cli(
        "import-cert", "--certificate", issued, "--private-key", key, "--chain", chain,
        "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{out}\n"
    written = x509.load_pem_x509_certificates(out.read_bytes())
    assert written == [x509.load_pem_x509_certificate(issued.read_bytes()), pki.issuing[0]]
    credentials = run_cli(
        "credential-process", "--certificate", out, "--private-key", key, *ARN_FLAGS,
        "--endpoint", emulator.url,
    )  # fmt: skip
    process_credentials(credentials)


def test_import_cert_refusals_change_nothing(pki: DevPki, tmp_path: Path) -> None:
    key = tmp_path / "device.key"
    public_key = keygen(key)
    issued = pki.issue_file(public_key, "file-refusals", tmp_path / "issued.pem")  # type: ignore[arg-type]
    out = tmp_path / "device.pem"
    out.write_text("old")

    exists = run_cli("import-cert", "--certificate", issued, "--private-key", key, "--out", out)
    assert_one_line_error(exists, "already exists", "--replace")
    root_only = run_cli(
        "import-cert", "--certificate", issued, "--private-key", key, "--chain", pki.root_cert,
        "--out", out, "--replace",
    )  # fmt: skip
    assert_one_line_error(root_only, "CN=hwsigner dev root CA in the chain did not issue")
    leaf_as_chain, _ = pki.new_leaf("ec-p256", "not-a-ca")
    not_ca = run_cli(
        "import-cert", "--certificate", issued, "--private-key", key, "--chain", leaf_as_chain,
        "--out", out, "--replace",
    )  # fmt: skip
    assert_one_line_error(not_ca, "CN=not-a-ca in the chain is not a CA certificate")
    other, _ = pki.new_leaf("ec-p256", "someone-else")
    mismatch = run_cli(
        "import-cert", "--certificate", other, "--private-key", key, "--out", out, "--replace"
    )
    assert_one_line_error(mismatch, "is not the key's", "nothing was changed")
    assert out.read_text() == "old"
    replaced = run_cli(
        "import-cert", "--certificate", issued, "--private-key", key, "--out", out, "--replace"
    )
    assert replaced.returncode == 0, replaced.stderr
    assert out.read_bytes() == issued.read_bytes()


def test_import_cert_without_out_only_checks(pki: DevPki, tmp_path: Path) -> None:
    key = tmp_path / "device.key"
    issued = pki.issue_file(keygen(key), "file-check", tmp_path / "issued.pem")  # type: ignore[arg-type]
    result = run_cli("import-cert", "--certificate", issued, "--private-key", key)
    assert result.returncode == 0 and result.stdout == ""
    assert "nothing written (no --out)" in result.stderr


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")
def test_the_private_ca_recipe_of_the_docs_passes_doctor(pki: DevPki, tmp_path: Path) -> None:
    """docs/provisioning.md's OpenSSL extensions file and command make a certificate doctor
    accepts (only the file names differ)."""
    docs = (REPO / "docs" / "provisioning.md").read_text()
    extensions = re.search(r"cat > leaf.ext <<'EOF'\n(.*?)\nEOF\n", docs, re.DOTALL)
    assert extensions, "the recipe is gone from docs/provisioning.md"
    (tmp_path / "leaf.ext").write_text(extensions.group(1) + "\n")
    assert "-extfile leaf.ext -copy_extensions copy" in docs
    key = tmp_path / "device.key"
    keygen(key)
    request = run_cli("csr", "--private-key", key, "--subject", "CN=docs-recipe", "--san", "dns:d")
    (tmp_path / "device.csr").write_text(request.stdout)
    subprocess.run(
        ["openssl", "x509", "-req", "-in", "device.csr", "-CA", pki.issuing_cert,
         "-CAkey", pki.directory / "issuing-ca.key", "-CAcreateserial", "-days", "365", "-sha256",
         "-extfile", "leaf.ext", "-copy_extensions", "copy", "-out", "device.pem"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    doctor = run_cli(
        "doctor", "--certificate", tmp_path / "device.pem", "--private-key", key,
        "--intermediates", pki.issuing_cert, "--trust-anchor-cert", pki.root_cert,
    )  # fmt: skip
    assert doctor.returncode == 0, doctor.stdout
    assert "WARN" not in doctor.stdout and "FAIL" not in doctor.stdout
