"""``hwsigner renew --pca-arn`` against moto's ACM PCA in server mode (an implementation nobody on
this project wrote), started here on loopback.

The device's own Roles Anywhere session (from the emulator) pays for the Private CA call when the
ARNs are given; botocore's default chain does otherwise. What moto 5.2 lacks, so these tests
cannot check it: it ignores ``Validity`` (always 365 days) and ``SigningAlgorithm`` (it signs with
SHA-512 and its own RSA key), does not verify the CSR's signature, and issues even from a CA that
is not ACTIVE.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509

from hwsigner.devpki import DevPki

from .conftest import RunningEmulator, start_emulator, stop
from .delivery import AWS_VARIABLES, create_sessions
from .helpers import ARN_FLAGS, REGION, assert_one_line_error, process_credentials, run_cli
from .test_renew import RENEWED, load

pytest.importorskip("moto.server", reason="needs moto[server] (the dev extra)")
boto3 = pytest.importorskip("boto3")

ROOT_TEMPLATE = "arn:aws:acm-pca:::template/RootCACertificate/V1"


@dataclass(frozen=True)
class PrivateCa:
    url: str
    arn: str
    certificate: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("moto_server exited at start-up")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError("moto_server did not start listening")


def activate_root_ca(url: str, directory: Path) -> PrivateCa:
    """A ROOT CA made ACTIVE the way AWS documents: its CSR, issued with the root template."""
    pca = boto3.client(
        "acm-pca", region_name=REGION, endpoint_url=url,
        aws_access_key_id="setup", aws_secret_access_key="setup",
    )  # fmt: skip
    arn = pca.create_certificate_authority(
        CertificateAuthorityConfiguration={
            "KeyAlgorithm": "RSA_2048",
            "SigningAlgorithm": "SHA256WITHRSA",
            "Subject": {"CommonName": "hwsigner test private CA", "Organization": "hwsigner"},
        },
        CertificateAuthorityType="ROOT",
    )["CertificateAuthorityArn"]
    csr = pca.get_certificate_authority_csr(CertificateAuthorityArn=arn)["Csr"]
    issued = pca.issue_certificate(
        CertificateAuthorityArn=arn, Csr=csr.encode(), SigningAlgorithm="SHA256WITHRSA",
        TemplateArn=ROOT_TEMPLATE, Validity={"Value": 3650, "Type": "DAYS"},
    )["CertificateArn"]  # fmt: skip
    root = pca.get_certificate(CertificateAuthorityArn=arn, CertificateArn=issued)["Certificate"]
    pca.import_certificate_authority_certificate(CertificateAuthorityArn=arn, Certificate=root)
    path = directory / "private-ca.pem"
    path.write_text(root)
    return PrivateCa(url, arn, path)


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCa]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(port, process)
        yield activate_root_ca(f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("pca"))
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def service(pki: DevPki, private_ca: PrivateCa) -> Iterator[RunningEmulator]:
    """Roles Anywhere trusting both the dev PKI (today's certificates) and the Private CA."""
    running = start_emulator(pki.root_cert, private_ca.certificate)
    yield running
    stop(running.process)


@pytest.fixture
def aws_env(tmp_path: Path) -> dict[str, str]:
    """No AWS credentials anywhere; Private CA calls go to moto through botocore's variable."""
    config = tmp_path / "aws-config"
    config.touch()
    return {
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(config),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def run_isolated(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``hwsigner ARGS`` with no AWS variable from this process, only those of ``env``."""
    clean = {name: value for name, value in os.environ.items() if name not in AWS_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "hwsigner", *map(str, args)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env={**clean, **env},
        timeout=120, check=False,
    )  # fmt: skip


def renew_pca(
    pki: DevPki, name: str, ca: PrivateCa, env: dict[str, str], *extra: str
) -> tuple[subprocess.CompletedProcess[str], Path, bytes]:
    cert, key = pki.new_leaf("ec-p256", name)
    before = cert.read_bytes()
    result = run_isolated(
        "renew", "--certificate", cert, "--private-key", key, "--intermediates",
        pki.issuing_cert, "--pca-arn", ca.arn, *extra, env=env,
    )  # fmt: skip
    return result, cert, before


def test_device_renews_itself_with_its_own_session_and_verifies(
    pki: DevPki, private_ca: PrivateCa, service: RunningEmulator, aws_env: dict[str, str]
) -> None:
    env = {**aws_env, "AWS_ENDPOINT_URL_ACM_PCA": private_ca.url}
    sessions = create_sessions(service.url)
    result, cert, before = renew_pca(
        pki, "pca-self", private_ca, env, *ARN_FLAGS, "--endpoint", service.url, "--verify",
        "--validity-days", "30",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    match = RENEWED.fullmatch(result.stdout)
    assert match, result.stdout
    new = load(cert)
    assert int(match[1]) == new.serial_number
    assert new.issuer == x509.load_pem_x509_certificate(private_ca.certificate.read_bytes()).subject
    assert Path(f"{cert}.previous").read_bytes() == before
    # one session for the Private CA call (no other credentials exist), one for --verify
    assert create_sessions(service.url) == sessions + 2
    # moto ignores Validity: 365 days whatever was asked (see the module docstring)
    expected_end = datetime.now(timezone.utc) + timedelta(days=365)
    assert abs(new.not_valid_after_utc - expected_end) < timedelta(days=1)
    flags = ["--certificate", cert, "--private-key", cert.with_suffix(".key"), *ARN_FLAGS]
    process_credentials(run_cli("credential-process", *flags, "--endpoint", service.url))


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_ACM_PCA", "AWS_ENDPOINT_URL"])
def test_default_credential_chain_and_endpoint_variables(
    pki: DevPki, private_ca: PrivateCa, aws_env: dict[str, str], variable: str
) -> None:
    env = {
        **aws_env,
        variable: private_ca.url,
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "example-secret",
    }
    result, cert, before = renew_pca(pki, f"pca-chain-{variable[-3:]}", private_ca, env)
    assert result.returncode == 0, result.stderr
    assert RENEWED.fullmatch(result.stdout)
    assert cert.read_bytes() != before


def test_no_credentials_is_one_line_and_changes_nothing(
    pki: DevPki, private_ca: PrivateCa, aws_env: dict[str, str]
) -> None:
    env = {**aws_env, "AWS_ENDPOINT_URL_ACM_PCA": private_ca.url}
    result, cert, before = renew_pca(pki, "pca-nocreds", private_ca, env)
    assert_one_line_error(result, "no AWS credentials")
    assert cert.read_bytes() == before


def test_unknown_ca_is_the_service_error_in_one_line(
    pki: DevPki, private_ca: PrivateCa, aws_env: dict[str, str]
) -> None:
    env = {
        **aws_env,
        "AWS_ENDPOINT_URL_ACM_PCA": private_ca.url,
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "example-secret",
    }
    missing = private_ca.arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    cert, key = pki.new_leaf("ec-p256", "pca-missing")
    before = cert.read_bytes()
    result = run_isolated(
        "renew", "--certificate", cert, "--private-key", key, "--pca-arn", missing, env=env
    )
    assert_one_line_error(result, "ResourceNotFoundException", "nothing was changed")
    assert cert.read_bytes() == before


def test_a_malformed_pca_arn_is_refused_before_anything(pki: DevPki) -> None:
    cert, key = pki.new_leaf("ec-p256", "pca-bad-arn")
    result = run_cli(
        "renew", "--certificate", cert, "--private-key", key, "--pca-arn", "arn:aws:s3:::bucket"
    )
    assert_one_line_error(result, "not a Private CA ARN")
