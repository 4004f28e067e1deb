"""``hwsigner doctor``: one line per check, a fix for each failure, exit 0 only when none failed."""

from __future__ import annotations

import socket
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509

from hwsigner.devpki import DevPki, key_pem, make_ca, make_leaf, new_key, pem
from hwsigner.keys import KeyOptions
from hwsigner.provision.doctor import Check, Setup, run_checks

from .conftest import RunningEmulator
from .helpers import ARN_FLAGS, PROFILE_ARN, ROLE_ARN, run_cli

NAMES = [
    "certificate",
    "private key",
    "key matches certificate",
    "validity",
    "Roles Anywhere rules",
    "chain",
    "ARNs",
]


def doctor(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_cli("doctor", *args)


def lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Each check's line by its name (with its indented problem lines); the last line is the
    summary."""
    found: dict[str, str] = {}
    name = ""
    for line in result.stdout.splitlines()[:-1]:
        if line.startswith(" "):
            found[name] += "\n" + line.strip()
            continue
        status, _, rest = line.partition(" ")
        name, _, detail = rest.strip().partition(": ")
        found[name] = f"{status} {detail}"
    assert result.stdout.splitlines()[-1].startswith("doctor: ")
    return found


def test_a_good_setup_passes_online(pki: DevPki, emulator: RunningEmulator) -> None:
    cert, key = pki.new_leaf("ec-p256", "doctor-good")
    result = doctor(
        "--certificate", cert, "--private-key", key, "--intermediates", pki.issuing_cert,
        "--trust-anchor-cert", pki.root_cert, *ARN_FLAGS, "--endpoint", emulator.url, "--online",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    found = lines(result)
    assert list(found) == [*NAMES, "CreateSession"]
    assert all(line.startswith("PASS ") for line in found.values()), result.stdout
    assert "trust anchor CN=hwsigner dev root CA" in found["chain"]
    assert result.stdout.splitlines()[-1] == "doctor: 8 passed, 0 warnings, 0 failed"
    assert result.stderr == ""


def test_offline_the_endpoint_only_has_to_answer(pki: DevPki, emulator: RunningEmulator) -> None:
    cert, key = pki.new_leaf("rsa-2048", "doctor-offline")
    result = doctor(
        "--certificate", cert, "--private-key", key, "--intermediates", pki.issuing_cert,
        "--trust-anchor-cert", pki.root_cert, *ARN_FLAGS, "--endpoint", emulator.url,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    assert lines(result)["endpoint"].startswith("PASS ")


def test_an_expired_certificate_is_named(pki: DevPki, tmp_path: Path) -> None:
    key = new_key("ec-p256")
    past = datetime.now(timezone.utc) - timedelta(days=400)
    leaf = make_leaf(key.public_key(), "doctor-expired", pki.issuing, now=past, days=365)
    cert = tmp_path / "expired.pem"
    cert.write_bytes(pem(leaf))
    key_path = tmp_path / "expired.key"
    key_path.write_bytes(key_pem(key))
    result = doctor("--certificate", cert, "--private-key", key_path, *ARN_FLAGS)
    assert result.returncode == 1
    validity = lines(result)["validity"]
    assert validity.startswith("FAIL the certificate expired on ")
    assert "(35 days ago)" in validity and "-- fix: renew it" in validity


def test_a_certificate_for_another_key(pki: DevPki) -> None:
    cert, _ = pki.new_leaf("ec-p256", "doctor-cert")
    _, other_key = pki.new_leaf("ec-p256", "doctor-other")
    result = doctor("--certificate", cert, "--private-key", other_key)
    assert result.returncode == 1
    assert lines(result)["key matches certificate"].startswith(
        "FAIL the key's public key is not the certificate's -- fix: "
    )


def test_a_ca_certificate_breaks_the_rules(pki: DevPki, tmp_path: Path) -> None:
    key = new_key("ec-p256")
    ca = make_ca("doctor-ca-as-leaf", key, pki.issuing)  # type: ignore[arg-type]
    cert, key_path = tmp_path / "ca.pem", tmp_path / "ca.key"
    cert.write_bytes(pem(ca))
    key_path.write_bytes(key_pem(key))
    result = doctor("--certificate", cert, "--private-key", key_path)
    assert result.returncode == 1
    rules = lines(result)["Roles Anywhere rules"].splitlines()
    assert rules == [
        "FAIL 2 problems",
        "- The signing certificate must not be a CA certificate -- fix: have the CA issue a new "
        "certificate for the same key (hwsigner csr makes the request) with CA:FALSE",
        "- The signing certificate's key usage must include digitalSignature -- fix: have the CA "
        "issue a new certificate for the same key (hwsigner csr makes the request) with "
        "digitalSignature",
    ]


def test_arns_of_two_regions_and_an_unreachable_endpoint(pki: DevPki) -> None:
    cert, key = pki.new_leaf("ec-p256", "doctor-arns")
    other_region = PROFILE_ARN.replace("us-east-1", "eu-west-1")
    mixed = doctor(
        "--certificate", cert, "--private-key", key, "--trust-anchor-arn",
        ARN_FLAGS[1], "--profile-arn", other_region, "--role-arn", ROLE_ARN,
    )  # fmt: skip
    assert mixed.returncode == 1
    found = lines(mixed)
    assert found["ARNs"].startswith("FAIL the trust anchor is in us-east-1 but the profile")
    assert found["endpoint"].startswith("SKIP ")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    unreachable = doctor(
        "--certificate", cert, "--private-key", key, *ARN_FLAGS,
        "--endpoint", f"http://127.0.0.1:{port}",
    )  # fmt: skip
    assert unreachable.returncode == 1
    assert lines(unreachable)["endpoint"].startswith("FAIL cannot reach http://127.0.0.1:")


def test_online_refusal_and_a_chain_that_misses_the_anchor(
    pki: DevPki, emulator: RunningEmulator, tmp_path: Path
) -> None:
    cert, key = pki.new_leaf("ec-p256", "doctor-no-chain")
    elsewhere = tmp_path / "other-root.pem"
    elsewhere.write_bytes(pem(make_ca("another root", new_key("ec-p256"))))  # type: ignore[arg-type]
    result = doctor(
        "--certificate", cert, "--private-key", key, "--trust-anchor-cert", elsewhere,
        *ARN_FLAGS, "--endpoint", emulator.url, "--online",
    )  # fmt: skip
    assert result.returncode == 1
    found = lines(result)
    assert found["chain"].startswith("FAIL CN=doctor-no-chain does not reach the trust anchor")
    assert found["CreateSession"].startswith("FAIL AccessDeniedException")


def test_nothing_given() -> None:
    result = doctor()
    assert result.returncode == 1
    found = lines(result)
    assert found["certificate"] == "FAIL no certificate given -- fix: pass --certificate"
    assert found["validity"].startswith("SKIP ")
    assert found["ARNs"].startswith("SKIP ")


@pytest.fixture
def leaf_and_key(pki: DevPki) -> tuple[str, str, x509.Certificate]:
    cert, key = pki.new_leaf("ec-p256", "doctor-in-process")
    return str(cert), str(key), x509.load_pem_x509_certificate(cert.read_bytes())


def checks_at(setup: Setup, now: datetime) -> dict[str, Check]:
    return {check.name: check for check in run_checks(setup, now)}


def test_validity_warns_under_30_days(leaf_and_key: tuple[str, str, x509.Certificate]) -> None:
    cert, key, leaf = leaf_and_key
    setup = Setup(certificate=cert, private_key=key, options=KeyOptions())
    soon = checks_at(setup, leaf.not_valid_after_utc - timedelta(days=10))["validity"]
    assert soon.status == "warn" and "expires in 10.0 days" in soon.detail
    later = checks_at(setup, leaf.not_valid_after_utc - timedelta(days=31))["validity"]
    assert later.status == "pass"
    early = checks_at(setup, leaf.not_valid_before_utc - timedelta(hours=1))["validity"]
    assert early.status == "fail" and "not valid before" in early.detail


def test_without_an_anchor_the_chain_is_a_warning(
    leaf_and_key: tuple[str, str, x509.Certificate],
) -> None:
    cert, key, leaf = leaf_and_key
    now = leaf.not_valid_before_utc + timedelta(days=1)
    chain = checks_at(Setup(certificate=cert, private_key=key), now)["chain"]
    assert chain.status == "warn"
    assert "the trust anchor must be" in chain.detail and chain.fix is not None
