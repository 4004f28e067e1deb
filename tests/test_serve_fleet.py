# ruff: noqa: F811 - pytest fixtures imported from tests.softhsm are redefined as arguments
"""``serve`` for hosts and pods: roles from ``--config`` on one open key, non-loopback
listeners with tokens, health and metrics, config mistakes in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from hwsigner.devpki import DevPki

from .conftest import RunningEmulator, start_emulator, stop
from .delivery import emulator_call, fail_service, isolate_aws
from .helpers import ARN_FLAGS, assert_one_line_error, run_cli
from .serving import ACCOUNT_ROLE, SITECUSTOMIZE, Serving, token_file, write_config
from .softhsm import MODULE, SoftHsm, make_lab, softhsm  # noqa: F401 (a fixture)

# The AWS CLI where it is installed (not a dependency of the project): checked beside boto3.
AWS_CLI = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")


def wait_ready(server: Serving) -> None:
    deadline = time.monotonic() + 60
    while server.get("/readyz")[0] != 200:
        assert time.monotonic() < deadline, "never ready: " + "".join(server.errors)
        time.sleep(0.1)


@pytest.mark.softhsm
def test_boto3_reads_two_roles_from_one_key_with_one_login(
    softhsm: SoftHsm, pki: DevPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pkcs11")
    lab = make_lab(softhsm, pki, "fleet")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    logins = tmp_path / "logins"
    emulators = {name: start_emulator(pki.root_cert) for name in ("build", "deploy")}
    try:
        tokens = {name: token_file(tmp_path, name) for name in emulators}
        config = write_config(
            tmp_path / "serve.ini",
            {"certificate": lab.token.uri(object="ec", pin=True), "pkcs11-lib": MODULE},
            {name: {"endpoint": emulators[name].url, "auth-token-file": str(tokens[name][0]),
                    "session-duration": duration}
             for name, duration in (("build", "900"), ("deploy", "3600"))},
        )  # fmt: skip
        fail_service(emulators["build"].url, count=1, status=403)  # build starts unready
        env = {"PYTHONPATH": f"{hook}:{Path.cwd()}", "HWSIGNER_TEST_LOGINS": str(logins)}
        server = Serving(["--config", str(config), "--port", "0"], env=env)
        try:
            wait_ready(server)
            isolate_aws(monkeypatch, tmp_path)
            for name, emulator in emulators.items():
                monkeypatch.setenv(
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{server.url}/role/{name}"
                )
                monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", tokens[name][1])
                found = boto3.Session().get_credentials()
                assert found.method == "container-role"
                seen = emulator_call(emulator.url, "GET", "stats")
                assert seen["createSession"] == 1
                assert seen["last"]["roleArn"] == ACCOUNT_ROLE + name
                assert seen["last"]["durationSeconds"] == (900 if name == "build" else 3600)
                assert found.get_frozen_credentials().access_key == seen["last"]["accessKeyId"]
                if AWS_CLI:  # the same key, as the AWS CLI resolves it from the container route
                    listed = subprocess.run([AWS_CLI, "configure", "list"], capture_output=True,
                                            text=True, timeout=60, check=True).stdout  # fmt: skip
                    assert f"****{seen['last']['accessKeyId'][-4:]}" in listed, listed
                    assert "container-role" in listed, listed
            assert emulator_call(emulators["build"].url, "GET", "stats")["failedOnPurpose"] == 1
            # /credentials and IMDSv2 serve the first role
            status, body = server.get("/credentials", {"Authorization": tokens["build"][1]})
            assert status == 200 and json.loads(body)["RoleArn"] == ACCOUNT_ROLE + "build"
            assert server.get("/role/build", {"Authorization": tokens["deploy"][1]})[0] == 401
        finally:
            code, output = server.stop()
        assert code == 0, output
        assert "role build has no credentials yet" in output or "role build:" in output
        assert logins.read_text() == "1"
    finally:
        for emulator in emulators.values():
            stop(emulator.process)


@pytest.fixture
def two_roles(pki: DevPki, own_emulator: RunningEmulator, tmp_path: Path) -> Path:
    """A config with a role that works and one whose endpoint refuses connections."""
    cert, key = pki.new_leaf("ec-p256", "fleet-file")
    good, _ = token_file(tmp_path, "good")
    broken, _ = token_file(tmp_path, "broken")
    return write_config(
        tmp_path / "serve.ini",
        {"certificate": str(cert), "private-key": str(key),
         "intermediates": str(pki.issuing_cert)},
        {"good": {"endpoint": own_emulator.url, "auth-token-file": str(good),
                  "instance-property": "site=lab, rack=7"},
         "broken": {"endpoint": "http://127.0.0.1:9/", "auth-token-file": str(broken)}},
    )  # fmt: skip


def test_health_readiness_and_metrics(two_roles: Path, own_emulator: RunningEmulator) -> None:
    server = Serving(["--config", str(two_roles), "--port", "0"])
    try:
        assert server.get("/healthz") == (200, "ok\n")
        assert server.get("/readyz") == (503, "not ready: broken\n")
        status, body = server.get("/role/good", {"Authorization": "good-token-0123456789abcdef"})
        assert status == 200
        credentials = json.loads(body)
        assert (
            server.get("/role/broken", {"Authorization": "broken-token-0123456789abcdef"})[0] == 500
        )
        ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        imds = {"X-aws-ec2-metadata-token": server.get("/latest/api/token", ttl, "PUT")[1]}
        listed = server.get("/latest/meta-data/iam/security-credentials/", imds)
        assert listed == (200, "good")  # IMDSv2: the first role, under its section name
        status, metrics = server.get("/metrics")
    finally:
        code, output = server.stop()
    assert status == 200 and code == 0
    sessions = emulator_call(own_emulator.url, "GET", "sessions")
    good = [s for s in sessions if s["roleArn"] == ACCOUNT_ROLE + "good"]
    assert good[-1]["instanceProperties"] == {"site": "lab", "rack": "7"}
    lines = metrics.splitlines()
    assert 'hwsigner_refresh_total{role="good",result="success"} 1' in lines
    assert any(line.startswith('hwsigner_refresh_total{role="broken",result="failure"} ')
               and not line.endswith(" 0") for line in lines)  # fmt: skip
    for name in ("credentials_expiry_seconds", "create_session_seconds"):
        assert any(line.startswith(f'hwsigner_{name}{{role="good"}} ') for line in lines)
    assert any(line.startswith("hwsigner_certificate_expiry_seconds ") for line in lines)
    for secret in credentials.values():
        if secret != credentials["Expiration"]:
            assert secret not in metrics
    assert "Traceback" not in output


ANY = "0.0.0.0"  # noqa: S104 - what the test is about; the test client stays on loopback


def test_a_non_loopback_address_needs_a_token(flags: list[str], tmp_path: Path) -> None:
    result = run_cli("serve", *flags, "--bind", ANY, "--port", "0")
    assert_one_line_error(result, "non-loopback", "token")
    path, token = token_file(tmp_path, "pod")
    server = Serving([*flags, "--bind", ANY, "--port", "0", "--auth-token-file", str(path)])
    try:
        assert server.first.startswith("export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://0.0.0.0:")
        assert server.get("/latest/api/token", method="PUT")[0] == 404  # no IMDSv2 there
        assert server.get("/latest/meta-data/iam/security-credentials/")[0] == 404
        assert server.get("/credentials")[0] == 401
        assert server.get("/credentials", {"Authorization": token + "x"})[0] == 401
        assert server.get("/credentials", {"Authorization": token})[0] == 200
        assert server.get("/healthz")[0] == 200
    finally:
        assert server.stop()[0] == 0


def test_ipv6_loopback_serves_imds(flags: list[str]) -> None:
    server = Serving([*flags, "--bind", "::1", "--port", "0"])
    try:
        assert server.first.startswith("export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://[::1]:")
    finally:
        assert server.stop()[0] == 0


CONFIG_MISTAKES = [
    ("[identity]\ncertificate = c.pem\n[role a]\nrole-arn = x\ncolour = red\n", "[role a] colour"),
    ("[identity]\ncertificate = c.pem\n[role a]\npkcs11-lib = /x.so\n", "[role a] pkcs11-lib"),
    ("[identity]\ncertificate = c.pem\nrole-arn = x\n[role a]\n", "[identity] role-arn"),
    ("[identity]\ncertificate = c.pem\n[role a]\nsession-duration = an hour\n",
     "[role a] session-duration"),
    ("[identity]\ncertificate = c.pem\n[roles a]\n", "[roles a]"),
    ("[identity]\ncertificate = c.pem\n[role a]\nrole-arn = x\n", "[role a] needs"),
    ("[identity]\ncertificate = c.pem\n", "no [role NAME]"),
    ("[role a]\nrole-arn = x\n", "no [identity]"),
    ("[identity]\ncertificate = c.pem\n[role a]\nauth-token-file = /nonexistent\n"
     "trust-anchor-arn = t\nprofile-arn = p\nrole-arn = r\n", "[role a] auth-token-file"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "where"), CONFIG_MISTAKES)
def test_config_mistakes_name_file_section_and_key(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "serve.ini"
    path.write_text(text)
    assert_one_line_error(run_cli("serve", "--config", str(path)), str(path), where)


def test_credential_flags_do_not_mix_with_config(tmp_path: Path) -> None:
    path = tmp_path / "serve.ini"
    path.write_text("[identity]\ncertificate = c.pem\n")
    result = run_cli("serve", "--config", str(path), *ARN_FLAGS[:2])
    assert_one_line_error(result, "--trust-anchor-arn", "--config")


def test_single_role_serve_still_fails_fast(
    flags: list[str], own_emulator: RunningEmulator
) -> None:
    fail_service(own_emulator.url, count=1, status=403)
    assert_one_line_error(run_cli("serve", *flags, "--port", "0"), "AccessDenied")
