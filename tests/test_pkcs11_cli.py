# ruff: noqa: F811 - pytest fixtures imported from tests.softhsm are redefined as arguments
"""``hwsigner`` as a subprocess with keys in SoftHSM tokens, talking to the emulator.

Tokens are made by ``softhsm2-util`` and filled by OpenSC's ``pkcs11-tool``; ``credential-process``
signs on the token and the emulator checks the signature and the chain over real HTTP.
"""

from __future__ import annotations

import base64
import os
import re
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from hwsigner.cli.show import fixed_message
from hwsigner.devpki import DevPki, pem

from .conftest import RunningEmulator
from .helpers import ARN_FLAGS, assert_one_line_error, process_credentials, run_cli
from .softhsm import MODULE, Lab, SoftHsm, SoftToken, make_lab, softhsm  # noqa: F401 (a fixture)
from .terminal import answer_prompt

pytestmark = pytest.mark.softhsm
pytest.importorskip("pkcs11")

P11_KIT_PROXY = next(
    (
        path
        for path in (
            "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so",
            "/usr/lib/aarch64-linux-gnu/p11-kit-proxy.so",
            "/usr/lib64/p11-kit-proxy.so",
            "/usr/lib/p11-kit-proxy.so",
        )
        if os.path.isfile(path)
    ),
    None,
)
SYSTEM_MODULE_CONFIGS = ("/etc/pkcs11/modules", "/usr/share/p11-kit/modules")


@pytest.fixture(scope="module")
def lab(softhsm: SoftHsm, pki: DevPki) -> Lab:
    return make_lab(softhsm, pki, "cli")


def credential_process(
    emulator: RunningEmulator, *flags: str, env: dict[str, str] | None = None
) -> dict[str, object]:
    result = run_cli("credential-process", *flags, *ARN_FLAGS, "--endpoint", emulator.url, env=env)
    return process_credentials(result)


def test_ec_key_by_object_with_pin_value(lab: Lab, emulator: RunningEmulator) -> None:
    uri = lab.token.uri(object="ec", pin=True)
    data = credential_process(emulator, "--certificate", uri, "--pkcs11-lib", MODULE)
    assert str(data["AccessKeyId"]).startswith("ASIA")


def test_rsa_key_by_id_with_pin_file(lab: Lab, emulator: RunningEmulator, tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(lab.token.pin + "\n")
    uri = lab.token.uri(id="%02") + f"?pin-source=file:{pin_file}"
    credential_process(emulator, "--certificate", uri, "--pkcs11-lib", MODULE)


def test_pin_from_the_environment(lab: Lab, emulator: RunningEmulator) -> None:
    uri = lab.token.uri(object="rsa")
    env = {"HWSIGNER_PKCS11_PIN": lab.token.pin}
    credential_process(emulator, "--certificate", uri, "--pkcs11-lib", MODULE, env=env)


def test_hybrid_certificate_file_and_token_key(
    lab: Lab, emulator: RunningEmulator, tmp_path: Path
) -> None:
    cert_file = tmp_path / "ec.pem"
    cert_file.write_bytes(pem(lab.ec_cert))
    flags = ["--certificate", str(cert_file), "--private-key", lab.token.uri(id="%01", pin=True)]
    flags += ["--intermediates", str(lab.pki.issuing_cert), "--pkcs11-lib", MODULE]
    credential_process(emulator, *flags)


def test_private_key_uri_alone(lab: Lab, emulator: RunningEmulator) -> None:
    uri = lab.token.uri(object="ec", pin=True)
    credential_process(emulator, "--private-key", uri, "--pkcs11-lib", MODULE)


def test_pin_is_asked_on_the_terminal_not_stdin(lab: Lab) -> None:
    """With a terminal and no PIN source, the PIN is read from /dev/tty with echo off."""
    out = Path(lab.token.hsm.directory) / "prompt.out"
    uri = lab.token.uri(object="ec")
    argv = [sys.executable, "-m", "hwsigner", "sign-string", "--certificate", uri,
            "--pkcs11-lib", MODULE, "--format", "text"]  # fmt: skip
    code, seen = answer_prompt(argv, b"PIN for token", lab.token.pin, out)
    assert code == 0, out.read_text()
    assert f"PIN for token '{lab.token.label}'".encode() in seen
    assert lab.token.pin.encode() not in seen  # echo was off
    signature = bytes.fromhex(out.read_text())
    public_key = lab.ec_cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, fixed_message(public_key), ec.ECDSA(hashes.SHA256()))


def test_default_module_is_p11_kit_proxy(
    lab: Lab, emulator: RunningEmulator, tmp_path: Path
) -> None:
    if P11_KIT_PROXY is None:
        pytest.skip("p11-kit-proxy.so is not installed (p11-kit-modules)")
    # p11-kit reads ~/.config/pkcs11/modules/*.module (or $XDG_CONFIG_HOME/pkcs11/...), but
    # not when running as root: then the system's softhsm2.module must do.
    config = tmp_path / "config" / "pkcs11" / "modules"
    config.mkdir(parents=True)
    (config / "softhsm2.module").write_text(f"module: {MODULE}\n")
    if os.geteuid() == 0 and not any(
        "softhsm" in path.read_text()
        for directory in SYSTEM_MODULE_CONFIGS
        if os.path.isdir(directory)
        for path in Path(directory).glob("*.module")
    ):
        pytest.skip("p11-kit ignores user module configs for root, and no system one has SoftHSM")
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    uri = lab.token.uri(object="ec", pin=True)
    credential_process(emulator, "--certificate", uri, env=env)


def test_chain_header_holds_exactly_the_issuing_ca(lab: Lab, emulator: RunningEmulator) -> None:
    uri = lab.token.uri(object="ec", pin=True)
    flags = ["--certificate", uri, "--pkcs11-lib", MODULE, "--debug"]
    result = run_cli("credential-process", *flags, *ARN_FLAGS, "--endpoint", emulator.url)
    process_credentials(result)
    [chain] = re.findall(r"^x-amz-x509-chain:(.*)$", result.stderr, re.MULTILINE)
    assert chain == base64.b64encode(lab.pki.issuing[0].public_bytes(Encoding.DER)).decode()
    assert f"pin-value={lab.token.pin}" not in result.stderr


@pytest.fixture(scope="module")
def wrong_pin_token(softhsm: SoftHsm, pki: DevPki) -> SoftToken:
    """A token of its own, so that failed logins do not touch the others."""
    token = softhsm.token()
    token.write_cert(pki.issue(token.keygen("ec-p256", "01", "ec"), "wrong-pin"), "01", "ec")
    return token


def test_wrong_pin_is_one_clear_line(wrong_pin_token: SoftToken) -> None:
    uri = wrong_pin_token.uri(object="ec") + "?pin-value=97531"
    result = run_cli(
        "credential-process", "--certificate", uri, "--pkcs11-lib", MODULE, *ARN_FLAGS, "--debug"
    )
    line = result.stderr.splitlines()[-1]
    assert result.returncode == 1 and result.stdout == ""
    assert line.startswith(f"hwsigner: wrong PIN for token '{wrong_pin_token.label}'")
    assert "97531" not in result.stderr  # not even under --debug


@pytest.mark.parametrize(
    ("uri", "flags", "needle"),
    [
        (
            "pkcs11:token=no-such-token;object=ec?pin-value=pin-7Rq",
            ("--pkcs11-lib", MODULE),
            "no PKCS#11 token matches pkcs11:token=no-such-token;object=ec;",
        ),
        ("pkcs11:token=x;id=%zz?pin-value=pin-7Rq", (), "invalid percent-encoding"),
        ("pkcs11:token=x;slot-id=one?pin-value=pin-7Rq", (), "slot-id must be a decimal number"),
        ("pkcs11:token=x?pin-value=pin-7Rq&pin-source=file:/p", (), "pin-value or pin-source"),
        (
            "pkcs11:token=x;object=ec?pin-value=pin-7Rq",
            ("--pkcs11-lib", "/nonexistent/libvendor-pkcs11.so"),
            "PKCS#11 module not found: /nonexistent/libvendor-pkcs11.so",
        ),
    ],
)
def test_mistakes_are_one_clear_line(
    lab: Lab, uri: str, flags: tuple[str, ...], needle: str
) -> None:
    result = run_cli("credential-process", "--certificate", uri, *flags, *ARN_FLAGS)
    line = assert_one_line_error(result, needle)
    assert "pin-7Rq" not in line


def test_several_matching_certificates_are_one_clear_line(lab: Lab) -> None:
    uri = lab.token.uri(pin=True)
    result = run_cli("credential-process", "--certificate", uri, "--pkcs11-lib", MODULE, *ARN_FLAGS)
    line = assert_one_line_error(result, "4 certificates match", "object=unrelated;type=cert")
    assert f"pin-value={lab.token.pin}" not in line


def test_read_certificate_data_lists_the_token(lab: Lab) -> None:
    result = run_cli(
        "read-certificate-data", "--certificate", lab.token.uri(), "--pkcs11-lib", MODULE
    )
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split("\n\n")
    assert blocks[0].startswith("Matching identities\n1) Hex Fingerprint: ")
    assert blocks[-1] == ""  # every entry ends with a blank line, as the official helper's
    entries = blocks[:-1]
    assert len(entries) == 4
    ec_entry = next(entry for entry in entries if "CN=cli-ec" in entry)
    assert f"Serial Number: {lab.ec_cert.serial_number:X}\n" in ec_entry
    assert f"Hex Fingerprint: {lab.ec_cert.fingerprint(hashes.SHA1()).hex()}\n" in ec_entry  # noqa: S303
    assert "Subject: CN=cli-ec,O=hwsigner dev\n" in ec_entry
    assert "Issuer: CN=hwsigner dev issuing CA,O=hwsigner dev\n" in ec_entry
    [uri] = re.findall(r"^URI: (pkcs11:.*)$", ec_entry, re.MULTILINE)
    assert uri.endswith(f"token={lab.token.label};id=%01;object=ec;type=cert")


def test_read_certificate_data_with_no_match(lab: Lab) -> None:
    uri = lab.token.uri(object="nothing-here", pin=True)
    result = run_cli("read-certificate-data", "--certificate", uri, "--pkcs11-lib", MODULE)
    assert (result.returncode, result.stdout) == (0, "No matching identities\n")


@pytest.mark.parametrize(("label", "digest"), [("ec", "SHA256"), ("rsa", "SHA384")])
def test_sign_string_verifies_over_the_fixed_message(lab: Lab, label: str, digest: str) -> None:
    cert = lab.ec_cert if label == "ec" else lab.rsa_cert
    uri = lab.token.uri(object=label, pin=True)
    flags = ["--certificate", uri, "--pkcs11-lib", MODULE, "--digest", digest, "--format", "text"]
    result = run_cli("sign-string", *flags)
    assert result.returncode == 0, result.stderr
    signature = bytes.fromhex(result.stdout)
    public_key = cert.public_key()
    algorithm = getattr(hashes, digest)()
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, fixed_message(public_key), padding.PKCS1v15(), algorithm)
    else:
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        public_key.verify(signature, fixed_message(public_key), ec.ECDSA(algorithm))
