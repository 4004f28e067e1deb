"""`hwsigner credential-process` as the AWS CLI runs it, against the emulator over loopback."""

from __future__ import annotations

import json
import shlex
import socket
import sys
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import botocore.session
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from hwsigner.credentials import parse_time

from .helpers import ARN_FLAGS, PROFILE_ARN, ROLE_ARN, assert_one_line_error, process_credentials
from .helpers import run_cli as hwsigner


def credential_process(*args: object, env: dict[str, str] | None = None):
    return hwsigner("credential-process", *map(str, args), env=env)


def leaf_flags(pki, kind: str, name: str, *, by_root: bool = False) -> list[object]:
    """A new leaf's flags: its certificate, its key, and the chain when it has one."""
    cert, key = pki.new_leaf(kind, name, by_root=by_root)
    chain = [] if by_root else ["--intermediates", pki.issuing_cert]
    return ["--certificate", cert, "--private-key", key, *chain]


def encrypt(key: Path, target: Path, password: bytes) -> Path:
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    target.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
    )
    return target


@pytest.mark.parametrize("kind", ["rsa-2048", "ec-p256", "ec-p384"])
def test_leaf_under_issuing_ca_with_intermediates(pki, emulator, kind: str) -> None:
    flags = leaf_flags(pki, kind, f"cli-{kind}")
    result = credential_process(*flags, *ARN_FLAGS, "--endpoint", emulator.url)
    data = process_credentials(result)
    assert str(data["AccessKeyId"]).startswith("ASIA")
    assert result.stderr == ""


def test_chain_is_needed_for_a_leaf_under_the_issuing_ca(pki, emulator) -> None:
    flags = leaf_flags(pki, "ec-p256", "cli-no-chain")[:4]  # without --intermediates
    result = credential_process(*flags, *ARN_FLAGS, "--endpoint", emulator.url)
    assert_one_line_error(result, "AccessDeniedException")


def test_leaf_under_the_root_needs_no_chain(pki, emulator) -> None:
    flags = leaf_flags(pki, "ec-p256", "cli-root", by_root=True)
    process_credentials(credential_process(*flags, *ARN_FLAGS, "--endpoint", emulator.url))


def test_duration_and_session_name_reach_the_body(pki, emulator) -> None:
    flags = leaf_flags(pki, "ec-p256", "cli-duration")
    result = credential_process(
        *flags, *ARN_FLAGS, "--endpoint", emulator.url,
        "--session-duration", "900", "--role-session-name", "build-42", "--debug",
    )  # fmt: skip
    data = process_credentials(result)
    left = parse_time(str(data["Expiration"])) - datetime.now(timezone.utc)
    assert timedelta(minutes=13) < left <= timedelta(minutes=15)
    assert 'request body: {"durationSeconds":900,"roleSessionName":"build-42"}' in result.stderr


def test_combo_pem(pki, emulator, tmp_path: Path) -> None:
    cert, key = pki.new_leaf("ec-p384", "cli-combo")
    combo = tmp_path / "combo.pem"
    combo.write_bytes(cert.read_bytes() + key.read_bytes())
    chain = ["--intermediates", pki.issuing_cert]
    result = credential_process(
        "--certificate", combo, *chain, *ARN_FLAGS, "--endpoint", emulator.url
    )
    process_credentials(result)


def test_encrypted_pkcs8(pki, emulator, tmp_path: Path) -> None:
    cert, key = pki.new_leaf("ec-p256", "cli-pkcs8")
    encrypted = encrypt(key, tmp_path / "enc.pem", b"pkcs8-pass")
    result = credential_process(
        "--certificate", cert, "--private-key", encrypted, "--pkcs8-password", "pkcs8-pass",
        "--intermediates", pki.issuing_cert, *ARN_FLAGS, "--endpoint", emulator.url,
    )  # fmt: skip
    process_credentials(result)


def test_pkcs12(pki, emulator, tmp_path: Path) -> None:
    cert, key = pki.new_leaf("rsa-2048", "cli-p12")
    p12 = tmp_path / "id.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"id",
            serialization.load_pem_private_key(key.read_bytes(), None),  # type: ignore[arg-type]
            x509.load_pem_x509_certificate(cert.read_bytes()),
            [x509.load_pem_x509_certificate(pki.issuing_cert.read_bytes())],
            serialization.BestAvailableEncryption(b"p12-pass"),
        )
    )
    env = {"HWSIGNER_PKCS8_PASSWORD": "p12-pass"}
    result = credential_process(
        "--certificate", p12, *ARN_FLAGS, "--endpoint", emulator.url, env=env
    )
    process_credentials(result)


def test_botocore_process_provider_accepts_the_output(pki, emulator, tmp_path: Path) -> None:
    flags = leaf_flags(pki, "ec-p256", "cli-botocore")
    argv = [sys.executable, "-m", "hwsigner", "credential-process", *flags, *ARN_FLAGS]
    command = shlex.join([*map(str, argv), "--endpoint", emulator.url])
    config = tmp_path / "config"
    config.write_text(f"[profile device]\ncredential_process = {command}\n")
    session = botocore.session.Session(profile="device")
    session.set_config_variable("config_file", str(config))
    session.set_config_variable("credentials_file", str(tmp_path / "none"))
    credentials = session.get_credentials()
    assert credentials.method == "custom-process"
    frozen = credentials.get_frozen_credentials()
    assert frozen.access_key.startswith("ASIA") and frozen.token


# -- user mistakes: exit 1, empty stdout, one line on stderr, no traceback ----------------------


@pytest.fixture(scope="module")
def leaf(pki):
    return pki.new_leaf("ec-p256", "cli-errors")


def test_missing_file(leaf, emulator) -> None:
    cert, _ = leaf
    missing_key = ["--private-key", "/nonexistent/key.pem"]
    result = credential_process("--certificate", cert, *missing_key, *ARN_FLAGS)
    assert_one_line_error(result, "private key file not found: /nonexistent/key.pem")
    result = credential_process("--certificate", "/nonexistent/c.pem", *ARN_FLAGS)
    assert_one_line_error(result, "certificate file not found")


def test_garbage_pem(leaf, tmp_path: Path) -> None:
    cert, _ = leaf
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    result = credential_process("--certificate", cert, "--private-key", garbage, *ARN_FLAGS)
    assert_one_line_error(result, "holds no private key")
    result = credential_process("--certificate", garbage, "--private-key", garbage, *ARN_FLAGS)
    assert_one_line_error(result, "no readable X.509 certificate")


def test_key_that_does_not_match(pki, leaf) -> None:
    cert, _ = leaf
    _, other = pki.new_leaf("ec-p256", "cli-other")
    result = credential_process("--certificate", cert, "--private-key", other, *ARN_FLAGS)
    assert_one_line_error(result, "does not match the certificate")


def test_wrong_pkcs8_password_is_not_echoed(leaf, tmp_path: Path) -> None:
    cert, key = leaf
    encrypted = encrypt(key, tmp_path / "enc.pem", b"right-password")
    flags = ["--certificate", cert, "--private-key", encrypted, *ARN_FLAGS]
    result = credential_process(*flags, "--pkcs8-password", "Wr0ngPassw0rd", "--debug")
    assert result.returncode == 1 and result.stdout == ""
    assert "wrong password" in result.stderr
    assert "Wr0ngPassw0rd" not in result.stderr
    assert_one_line_error(credential_process(*flags), "no terminal", "--pkcs8-password")


def test_no_certificate_and_no_key() -> None:
    assert_one_line_error(credential_process(*ARN_FLAGS), "no certificate and no private key")


def test_region_mismatch_and_malformed_arn(leaf) -> None:
    cert, key = leaf
    identity = ["--certificate", cert, "--private-key", key, "--role-arn", ROLE_ARN]
    mismatch = PROFILE_ARN.replace("us-east-1", "eu-west-1")
    anchor = ["--trust-anchor-arn", ARN_FLAGS[1]]
    result = credential_process(*identity, *anchor, "--profile-arn", mismatch)
    assert_one_line_error(result, "us-east-1 but the profile is in eu-west-1")
    result = credential_process(
        *identity, "--trust-anchor-arn", "arn:aws:nope", "--profile-arn", PROFILE_ARN
    )
    assert_one_line_error(result, "--trust-anchor-arn is not an ARN")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_endpoint(leaf) -> None:
    cert, key = leaf
    url = f"http://127.0.0.1:{free_port()}"
    result = credential_process(
        "--certificate", cert, "--private-key", key, *ARN_FLAGS, "--endpoint", url,
        env={"AWS_MAX_ATTEMPTS": "2"},
    )  # fmt: skip
    assert_one_line_error(result, f"cannot reach {url}")


def test_403_from_the_service_is_shown(pki, emulator) -> None:
    stranger = type(pki).create(pki.directory / "stranger")
    flags = leaf_flags(stranger, "ec-p256", "cli-untrusted", by_root=True)
    result = credential_process(*flags, *ARN_FLAGS, "--endpoint", emulator.url)
    assert_one_line_error(result, "AccessDeniedException: Untrusted signing certificate")


class Failing(BaseHTTPRequestHandler):
    """A real loopback server that always answers 503 and records who asked."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append(dict(self.headers))
        body = json.dumps({"message": "try later"}).encode()
        self.send_response(503)
        self.send_header("x-amzn-ErrorType", "ServiceUnavailableException")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_5xx_is_retried_a_bounded_number_of_times(leaf) -> None:
    cert, key = leaf
    server = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        flags = ["--certificate", cert, "--private-key", key, *ARN_FLAGS, "--endpoint", url]
        result = credential_process(*flags)
    finally:
        server.shutdown()
        server.server_close()
    assert_one_line_error(result, "ServiceUnavailableException: try later")
    assert len(Failing.seen) == 3
    assert all(h["Authorization"].startswith("AWS4-X509-ECDSA-SHA256 ") for h in Failing.seen)
    assert all(h["X-Amz-Date"] for h in Failing.seen)  # fresh dates: test_rolesanywhere.py


def test_debug_shows_steps_and_no_secret(pki, emulator) -> None:
    flags = leaf_flags(pki, "ec-p256", "cli-debug")
    result = credential_process(*flags, *ARN_FLAGS, "--endpoint", emulator.url, "--debug")
    data = process_credentials(result)
    for step in ("key: file", "canonical request:", "string to sign:", "endpoint:"):
        assert step in result.stderr
    for secret in (data["SecretAccessKey"], data["SessionToken"]):
        assert str(secret) not in result.stderr
    assert "PRIVATE KEY" not in result.stderr
