# ruff: noqa: F811 - pytest fixtures imported from tests.softhsm are redefined as arguments
"""``hwsigner renew`` with keys that never leave their device: a SoftHSM token and a swtpm TPM.

The request is signed inside the device, OpenSSL issues, ``--verify`` proves the new certificate
at the emulator with the same key, and the certificate lands where the old one was: on the token
(same id and label as the key, the old object gone) or in the file beside the TPM key.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hwsigner.devpki import DevPki, pem

from .conftest import RunningEmulator
from .delivery import emulator_call
from .helpers import ARN_FLAGS, assert_one_line_error, process_credentials, run_cli
from .softhsm import MODULE, SoftHsm, SoftToken, softhsm  # noqa: F401 (a fixture)
from .swtpm import Swtpm, needs_swtpm
from .test_renew import RENEWED, openssl_x509


def token_certificates(token: SoftToken, label: str) -> list[x509.Certificate]:
    """The certificates labelled ``label`` on the token, read by pkcs11-tool (not hwsigner)."""
    listing = token.tool("--list-objects", "--type", "cert", login=False).decode()
    count = listing.count(f"label:      {label}\n")
    if count == 0:
        return []
    der = token.tool("--read-object", "--type", "cert", "--label", label, login=False)
    return [x509.load_der_x509_certificate(der)] * count


def last_serial(url: str) -> str:
    return str(emulator_call(url, "GET", "stats")["last"]["serialNumber"])


@pytest.fixture
def hsm_device(softhsm: SoftHsm, pki: DevPki) -> tuple[SoftToken, x509.Certificate, str]:
    pytest.importorskip("pkcs11")
    token = softhsm.token()
    cert = pki.issue(token.keygen("ec-p256", "01", "ra"), "renew-hsm")
    token.write_cert(cert, "01", "ra")
    return token, cert, token.uri(object="ra", pin=True)


@pytest.mark.softhsm
def test_softhsm_key_renews_on_the_token(
    pki: DevPki, own_emulator: RunningEmulator, hsm_device: tuple[SoftToken, x509.Certificate, str]
) -> None:
    token, old, uri = hsm_device
    flags = ["--certificate", uri, "--private-key", uri, "--pkcs11-lib", MODULE,
             "--intermediates", str(pki.issuing_cert)]  # fmt: skip
    service = [*ARN_FLAGS, "--endpoint", own_emulator.url]
    result = run_cli("renew", *flags, *service, "--exec", openssl_x509(pki), "--verify")
    assert result.returncode == 0, result.stderr
    match = RENEWED.fullmatch(result.stdout)
    assert match, result.stdout
    assert last_serial(own_emulator.url) == match[1]  # --verify used the new certificate
    stored = token_certificates(token, "ra")
    assert len(stored) == 1 and stored[0].serial_number == int(match[1]) != old.serial_number
    assert stored[0].public_key() == old.public_key()
    process_credentials(run_cli("credential-process", *flags, *service))
    assert last_serial(own_emulator.url) == match[1]

    result = run_cli("renew", *flags, "--exec", "false", "--if-expiring-within", "10")
    assert result.stdout.startswith("not due: expires in "), result.stderr


@pytest.mark.softhsm
def test_softhsm_bad_answer_leaves_the_token_alone(
    pki: DevPki, hsm_device: tuple[SoftToken, x509.Certificate, str]
) -> None:
    token, old, uri = hsm_device
    other_cert, _ = pki.new_leaf("ec-p256", "renew-hsm-other")
    flags = ["--certificate", uri, "--private-key", uri, "--pkcs11-lib", MODULE]
    result = run_cli("renew", *flags, "--exec", f"cat >/dev/null; cat {other_cert}")
    assert_one_line_error(result, "another key", "nothing was changed")
    assert token_certificates(token, "ra") == [old]


@pytest.mark.tpm
@needs_swtpm
def test_swtpm_key_renews_its_certificate_file(
    pki: DevPki, own_emulator: RunningEmulator, tmp_path: Path
) -> None:
    with Swtpm.running(tmp_path / "tpm") as tpm:
        key = tmp_path / "device.tss2"
        made = run_cli("keygen", "--tpm-tcti", tpm.tcti, "--private-key", key, "--tpm")
        assert made.returncode == 0, made.stderr
        public_pem = (
            made.stdout.rpartition("-----END PUBLIC KEY-----")[0] + "-----END PUBLIC KEY-----"
        )
        public_key = serialization.load_pem_public_key(public_pem.encode())
        cert = tmp_path / "device.pem"
        cert.write_bytes(pem(pki.issue(public_key, "renew-tpm")))  # type: ignore[arg-type]
        before = cert.read_bytes()
        flags = ["--certificate", str(cert), "--private-key", str(key), "--tpm-tcti", tpm.tcti,
                 "--intermediates", str(pki.issuing_cert)]  # fmt: skip
        service = [*ARN_FLAGS, "--endpoint", own_emulator.url]

        other_cert, _ = pki.new_leaf("ec-p256", "renew-tpm-other")
        refused = run_cli("renew", *flags, "--exec", f"cat >/dev/null; cat {other_cert}")
        assert_one_line_error(refused, "another key")
        assert cert.read_bytes() == before

        result = run_cli("renew", *flags, *service, "--exec", openssl_x509(pki), "--verify")
        assert result.returncode == 0, result.stderr
        match = RENEWED.fullmatch(result.stdout)
        assert match, result.stdout
        assert last_serial(own_emulator.url) == match[1]
        new = x509.load_pem_x509_certificate(cert.read_bytes())
        assert new.serial_number == int(match[1]) and new.public_key() == public_key
        assert Path(f"{cert}.previous").read_bytes() == before
        process_credentials(run_cli("credential-process", *flags, *service))
        assert tpm.transient_handles() == []
