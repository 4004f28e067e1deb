"""`hwsigner credential-process` with TPM keys, swtpm as the TPM and the emulator as the service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from hwsigner.cli.show import fixed_message
from hwsigner.devpki import DevPki
from tests.conftest import RunningEmulator
from tests.helpers import ARN_FLAGS, assert_one_line_error, process_credentials, run_cli
from tests.swtpm import Swtpm, free_port_pair, needs_swtpm, needs_tpm2_openssl
from tests.terminal import answer_prompt

pytestmark = [pytest.mark.tpm, needs_swtpm, needs_tpm2_openssl]


def credential_process(
    tpm: Swtpm, emulator: RunningEmulator, pki: DevPki, cert: Path, key: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "credential-process",
        "--certificate", cert, "--private-key", key, "--intermediates", pki.issuing_cert,
        "--tpm-tcti", tpm.tcti, "--endpoint", emulator.url, *ARN_FLAGS, *extra,
    )  # fmt: skip


def tpm_key_and_cert(
    tpm: Swtpm, pki: DevPki, directory: Path, kind: str, password: str | None = None
) -> tuple[Path, Path]:
    key = tpm.openssl_key(directory / f"{kind}.tss2", kind, password=password)
    cert = pki.issue_file(
        tpm.openssl_public_key(key, password), f"tpm-{kind}", directory / f"{kind}.pem"
    )
    return key, cert


@pytest.mark.parametrize("kind", ["ec-p256", "ec-p384", "rsa-2048"])
def test_tpm2_openssl_keys(
    module_swtpm: Swtpm, emulator: RunningEmulator, pki: DevPki, tmp_path: Path, kind: str
) -> None:
    key, cert = tpm_key_and_cert(module_swtpm, pki, tmp_path, kind)
    result = credential_process(module_swtpm, emulator, pki, cert, str(key))
    assert str(process_credentials(result)["AccessKeyId"]).startswith("ASIA")
    assert result.stderr == ""
    assert module_swtpm.transient_handles() == []


def test_key_with_a_password(
    module_swtpm: Swtpm, emulator: RunningEmulator, pki: DevPki, tmp_path: Path
) -> None:
    key, cert = tpm_key_and_cert(module_swtpm, pki, tmp_path, "ec-p256", password="pass phrase")
    result = credential_process(
        module_swtpm, emulator, pki, cert, str(key), "--tpm-key-password", "pass phrase"
    )
    process_credentials(result)


def test_persistent_key_made_by_tpm2_tools(
    module_swtpm: Swtpm, emulator: RunningEmulator, pki: DevPki, tmp_path: Path
) -> None:
    public_key = module_swtpm.persistent_key(0x81000010, tmp_path)
    cert = pki.issue_file(public_key, "tpm-persistent", tmp_path / "persistent.pem")
    result = credential_process(
        module_swtpm, emulator, pki, cert, "handle:0x81000010", "--no-tpm-key-password"
    )
    process_credentials(result)
    assert module_swtpm.transient_handles() == []


def test_six_runs_in_a_row_leave_nothing_loaded(
    module_swtpm: Swtpm, emulator: RunningEmulator, pki: DevPki, tmp_path: Path
) -> None:
    keys = [tpm_key_and_cert(module_swtpm, pki, tmp_path, kind) for kind in ("ec-p256", "rsa-2048")]
    for run in range(6):
        key, cert = keys[run % 2]
        process_credentials(credential_process(module_swtpm, emulator, pki, cert, str(key)))
    assert module_swtpm.transient_handles() == []


def test_tcti_from_tpm2tools_tcti(module_swtpm: Swtpm, tmp_path: Path) -> None:
    key = module_swtpm.openssl_key(tmp_path / "k.tss2", "ec-p384")
    public_key = module_swtpm.openssl_public_key(key)
    result = run_cli(
        "sign-string", "--private-key", key, "--digest", "SHA384", "--format", "text",
        env={"TPM2TOOLS_TCTI": module_swtpm.tcti},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    signature = bytes.fromhex(result.stdout)
    public_key.verify(signature, fixed_message(public_key), ec.ECDSA(hashes.SHA384()))


def test_sign_string_rsa_sha512(module_swtpm: Swtpm, tmp_path: Path) -> None:
    key = module_swtpm.openssl_key(tmp_path / "k.tss2", "rsa-2048")
    public_key = module_swtpm.openssl_public_key(key)
    result = run_cli(
        "sign-string", "--private-key", key, "--digest", "SHA512", "--format", "text",
        "--tpm-tcti", module_swtpm.tcti,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert isinstance(public_key, rsa.RSAPublicKey)
    signature = bytes.fromhex(result.stdout)
    public_key.verify(signature, fixed_message(public_key), padding.PKCS1v15(), hashes.SHA512())


def test_wrong_password(
    swtpm: Swtpm, emulator: RunningEmulator, pki: DevPki, tmp_path: Path
) -> None:
    key, cert = tpm_key_and_cert(swtpm, pki, tmp_path, "ec-p256", password="the-right-one")
    result = credential_process(
        swtpm, emulator, pki, cert, str(key), "--tpm-key-password", "not-it-at-all"
    )
    line = assert_one_line_error(result, "wrong password", "dictionary-attack lockout")
    assert "the-right-one" not in line and "not-it-at-all" not in line
    assert swtpm.lockout_counter() == 1
    assert swtpm.transient_handles() == []


def test_password_is_asked_on_the_terminal_not_stdin(module_swtpm: Swtpm, tmp_path: Path) -> None:
    """With a terminal and no password given, it is read from /dev/tty with echo off."""
    key = module_swtpm.openssl_key(tmp_path / "k.tss2", "ec-p256", password="typed secret")
    public_key = module_swtpm.openssl_public_key(key, "typed secret")
    out = tmp_path / "prompt.out"
    argv = [sys.executable, "-m", "hwsigner", "sign-string", "--private-key", str(key),
            "--tpm-tcti", module_swtpm.tcti, "--format", "text"]  # fmt: skip
    code, seen = answer_prompt(argv, b"Password for TPM key", "typed secret", out)
    assert code == 0, out.read_text()
    assert b"typed secret" not in seen  # echo was off
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    signature = bytes.fromhex(out.read_text())
    public_key.verify(signature, fixed_message(public_key), ec.ECDSA(hashes.SHA256()))
    assert module_swtpm.transient_handles() == []


def test_password_needed_without_a_terminal(
    module_swtpm: Swtpm, emulator: RunningEmulator, pki: DevPki, tmp_path: Path
) -> None:
    key, cert = tpm_key_and_cert(module_swtpm, pki, tmp_path, "ec-p256", password="pw")
    result = credential_process(module_swtpm, emulator, pki, cert, str(key))
    assert_one_line_error(result, "no terminal", "--tpm-key-password")
    assert module_swtpm.transient_handles() == []


def test_unreachable_tpm(
    module_swtpm: Swtpm, emulator: RunningEmulator, pki: DevPki, tmp_path: Path
) -> None:
    key, cert = tpm_key_and_cert(module_swtpm, pki, tmp_path, "ec-p256")
    tcti = f"swtpm:host=127.0.0.1,port={free_port_pair()}"
    result = credential_process(module_swtpm, emulator, pki, cert, str(key), "--tpm-tcti", tcti)
    assert_one_line_error(result, "cannot reach the TPM", tcti)


@pytest.mark.parametrize(
    "body",
    [b"bm90IGEga2V5\n", b"MIHwBgZngQUKAQOgAwEBAQIEQAAAAQRYAFYAIwALAAYAcgAAABAAEAAD\n"],
    ids=["not-asn1", "truncated"],
)
def test_corrupt_tss2_file(
    module_swtpm: Swtpm, emulator: RunningEmulator, pki: DevPki, tmp_path: Path, body: bytes
) -> None:
    cert, _ = pki.new_leaf("ec-p256", "corrupt-tss2")
    key = tmp_path / "device.key"  # detected by its content, whatever its name
    key.write_bytes(
        b"-----BEGIN TSS2 PRIVATE KEY-----\n" + body + b"-----END TSS2 PRIVATE KEY-----\n"
    )
    result = credential_process(module_swtpm, emulator, pki, cert, str(key))
    assert_one_line_error(result, f"{key} is not a usable TSS2 PRIVATE KEY file")


def test_key_from_another_tpm(
    module_swtpm: Swtpm, swtpm: Swtpm, emulator: RunningEmulator, pki: DevPki, tmp_path: Path
) -> None:
    key, cert = tpm_key_and_cert(module_swtpm, pki, tmp_path, "ec-p256")
    result = credential_process(swtpm, emulator, pki, cert, str(key))
    assert_one_line_error(result, "made by another TPM")
    assert swtpm.transient_handles() == []


def test_certificate_of_another_key(
    module_swtpm: Swtpm, emulator: RunningEmulator, pki: DevPki, tmp_path: Path
) -> None:
    key = module_swtpm.openssl_key(tmp_path / "k.tss2", "ec-p256")
    cert, _ = pki.new_leaf("ec-p256", "someone-else")
    result = credential_process(module_swtpm, emulator, pki, cert, str(key))
    assert_one_line_error(result, "does not match the certificate")
    assert module_swtpm.transient_handles() == []


def test_python_api_creates_the_primary_once_for_many_sessions(
    module_swtpm: Swtpm, emulator: RunningEmulator, pki: DevPki, tmp_path: Path
) -> None:
    from hwsigner.session import Session
    from hwsigner.settings import Settings
    from tests.helpers import PROFILE_ARN, ROLE_ARN, TRUST_ANCHOR_ARN

    key_file, cert = tpm_key_and_cert(module_swtpm, pki, tmp_path, "ec-p384")
    settings = Settings(
        certificate=str(cert), private_key=str(key_file), intermediates=str(pki.issuing_cert),
        trust_anchor_arn=TRUST_ANCHOR_ARN, profile_arn=PROFILE_ARN, role_arn=ROLE_ARN,
        endpoint=emulator.url, tpm_tcti=module_swtpm.tcti,
    )  # fmt: skip
    with Session.open(settings) as session:
        keys = {session.fetch().access_key_id for _ in range(5)}
        counters = session.key.counters  # type: ignore[attr-defined]
    assert len(keys) == 5
    assert (counters.primaries_created, counters.keys_loaded, counters.signatures) == (1, 1, 5)
    assert module_swtpm.transient_handles() == []
