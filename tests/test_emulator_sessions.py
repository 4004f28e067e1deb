"""What a certificate produces, shown: ``GET /_emulator/sessions`` (the session tags of the
default and of a profile's mapping), ``hwsigner emulator check`` (the same decision offline, on
one screen), and the model file's one-line errors naming the place in the file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hwsigner.devpki import DevPki, pem
from hwsigner.identity import Identity
from hwsigner.keys.file import FileKey
from hwsigner.sigv4x509 import Request
from hwsigner.transport import HttpTransport

from .conftest import RunningEmulator, start_emulator, stop
from .helpers import assert_one_line_error, run_cli
from .test_emulator_model import (
    PROFILE,
    PROFILE_NAMED,
    ROLE_OPEN,
    ROLE_OU,
    TA,
    Lab,
    ask,
    make_leaf,
    pem_crl,
    running_lab,
)
from .test_emulator_rules import Device, Emu, send, signed

SAN = (
    x509.DNSName("dev-9.example.com"),
    x509.DNSName("second.example.com"),
    x509.UniformResourceIdentifier("spiffe://example.com/dev-9"),
    x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dir-name")])),
)


@pytest.fixture(scope="module")
def lab(pki: DevPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from running_lab(pki, tmp_path_factory)


def tagged_device(pki: DevPki) -> Device:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Corp"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, "dev-9"),
        ]
    )
    cert = make_leaf(key.public_key(), pki.issuing, name, san=SAN)
    return Device(Identity(cert, (pki.issuing[0],)), FileKey(key))


def sessions(url: str) -> list[dict[str, object]]:
    response = HttpTransport()(Request("GET", url + "/_emulator/sessions", (), b""))
    assert response.status == 200
    data = json.loads(response.body)
    assert isinstance(data, list)
    return data


def test_sessions_list_each_create_session_with_its_tags_oldest_first(lab: Lab) -> None:
    before = len(sessions(lab.emu.url))
    dev = tagged_device(lab.pki)
    ask(lab, dev, role=ROLE_OU)
    ask(lab, dev, profile=PROFILE_NAMED, instanceProperties={"site": "lab-3"})
    ask(lab, dev, roleSessionName="not-allowed")
    first, second, third = sessions(lab.emu.url)[before:]
    cert = dev.identity.certificate
    assert first == {
        "serialNumber": str(cert.serial_number),
        "subject": "CN=dev-9,OU=Devices,O=Example Corp,C=US",
        "roleArn": ROLE_OU,
        "principalTags": {  # the default mapping: every RDN of subject and issuer, first SANs
            "x509Subject/C": "US",
            "x509Subject/O": "Example Corp",
            "x509Subject/OU": "Devices",
            "x509Subject/CN": "dev-9",
            "x509Issuer/O": "hwsigner dev",
            "x509Issuer/CN": "hwsigner dev issuing CA",
            "x509SAN/DNS": "dev-9.example.com",
            "x509SAN/URI": "spiffe://example.com/dev-9",
            "x509SAN/Name/CN": "dir-name",
        },
        "sourceIdentity": "CN=dev-9",
        "roleSessionName": format(cert.serial_number, "x"),
        "durationSeconds": 3600,
        "instanceProperties": {},
        "decision": "allowed",
        "reason": "",
    }
    assert second["principalTags"] == {"x509Subject/CN": "dev-9", "x509Subject/OU": "Devices"}
    assert second["instanceProperties"] == {"site": "lab-3"}
    assert (third["decision"], third["durationSeconds"]) == ("refused", None)
    assert "acceptRoleSessionName" in str(third["reason"])


def test_a_request_refused_before_the_decision_is_listed_too(lab: Lab) -> None:
    dev = tagged_device(lab.pki)
    request = signed(lab.emu, dev)
    tampered = Request(request.method, request.url, request.headers, b'{"durationSeconds":901}')
    send(tampered)
    last = sessions(lab.emu.url)[-1]
    assert last["serialNumber"] == str(dev.identity.certificate.serial_number)
    assert (last["decision"], last["reason"]) == ("refused", "Invalid signature")


@pytest.fixture(scope="module")
def short_form(pki: DevPki) -> Iterator[RunningEmulator]:
    running = start_emulator(pki.root_cert)
    yield running
    stop(running.process)


def test_the_short_form_shows_the_default_tags(short_form: RunningEmulator, pki: DevPki) -> None:
    dev = tagged_device(pki)
    from datetime import datetime, timezone

    send(signed(Emu(short_form.url, datetime.now(timezone.utc)), dev))
    last = sessions(short_form.url)[-1]
    assert last["decision"] == "allowed"
    assert last["principalTags"]["x509Subject/OU"] == "Devices"  # type: ignore[index]


# --- hwsigner emulator check ----------------------------------------------------------------


def check(lab: Lab, cert: Path, *extra: str) -> tuple[int, str]:
    result = run_cli(
        "emulator", "check", "--config", lab.model, "--certificate", cert,
        "--intermediates", lab.pki.issuing_cert, "--trust-anchor-arn", TA, *extra,
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout


def leaf_file(pki: DevPki, tmp_path: Path) -> Path:
    path = tmp_path / "dev-9.pem"
    path.write_bytes(pem(tagged_device(pki).identity.certificate))
    return path


def test_check_answers_allowed_with_the_tags(lab: Lab, tmp_path: Path) -> None:
    code, out = check(lab, leaf_file(lab.pki, tmp_path), "--profile-arn", PROFILE,
                      "--role-arn", ROLE_OU, "--duration-seconds", "43200")  # fmt: skip
    assert code == 0, out
    assert out.startswith(f"ALLOWED: {ROLE_OU} for 3600 s\n")
    assert "aws:PrincipalTag/x509Subject/OU = Devices\n" in out
    assert "sourceIdentity:   CN=dev-9\n" in out


def test_check_answers_refused_with_the_reason(lab: Lab, tmp_path: Path) -> None:
    code, out = check(lab, leaf_file(lab.pki, tmp_path), "--profile-arn", PROFILE,
                      "--role-arn", ROLE_OPEN, "--role-session-name", "ci-7")  # fmt: skip
    assert code == 2, out
    assert out.startswith("REFUSED: 403 AccessDeniedException: Not authorized to set roleSession")
    assert "acceptRoleSessionName" in out


def test_check_applies_a_crl_flag_as_the_emulator_does(lab: Lab, tmp_path: Path) -> None:
    cert = leaf_file(lab.pki, tmp_path)
    crl = tmp_path / "issuing.crl"
    crl.write_bytes(pem_crl(lab.pki.revoke([x509.load_pem_x509_certificate(cert.read_bytes())])))
    flags = ("--profile-arn", PROFILE, "--role-arn", ROLE_OPEN)
    code, out = check(lab, cert, *flags, "--crl", str(crl))
    assert code == 2, out
    assert out.startswith("REFUSED: 403 AccessDeniedException: Certificate revoked\n")
    assert check(lab, cert, *flags)[0] == 0


def test_check_takes_the_profiles_only_role(lab: Lab, tmp_path: Path) -> None:
    code, out = check(lab, leaf_file(lab.pki, tmp_path), "--profile-arn", PROFILE_NAMED,
                      "--instance-property", "site=lab-3")  # fmt: skip
    assert code == 0, out
    assert "(the profile's mapping rules)" in out


# --- the model file's errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda m: m["profiles"][0].update(roleArns="x"), "profiles[0].roleArns must be a list"),
        (lambda m: m["profiles"][1].update(roleArns=[]), "profiles[1].roleArns must list"),
        (lambda m: m["roles"][0].update(MaxSessionDuration=60), "roles[0].MaxSessionDuration"),
        (
            lambda m: m["roles"][2]["AssumeRolePolicyDocument"]["Statement"][0].update(
                Condition={"StringEqualz": {"a": "b"}}
            ),
            "roles[2].AssumeRolePolicyDocument.Statement[0].Condition.StringEqualz",
        ),
        (lambda m: m["crls"][0].update(crlData="nope"), "crls[0].crlData"),
        (lambda m: m["trustAnchors"][0]["source"].update(sourceType="AWS_ACM_PCA"), "sourceType"),
        (lambda m: m["roles"].append(m["roles"][0]), "roles names an ARN twice"),
    ],
)
def test_a_bad_model_is_one_line_naming_the_place(
    lab: Lab, tmp_path: Path, change: object, needle: str
) -> None:
    model = json.loads(lab.model.read_text())
    change(model)  # type: ignore[operator]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(model))
    result = run_cli("emulator", "--port", "0", "--config", path)
    assert_one_line_error(result, str(path), needle)


def test_config_and_trust_anchor_are_not_both_taken(lab: Lab) -> None:
    result = run_cli("emulator", "--config", lab.model, "--trust-anchor", lab.pki.root_cert)
    assert_one_line_error(result, "--config and --trust-anchor")


def test_the_debug_log_says_why(lab: Lab) -> None:
    running = start_emulator(
        extra=("--config", str(lab.model), "--now", lab.emu.now.isoformat(), "--debug")
    )
    try:
        own = Lab(Emu(running.url, lab.emu.now), lab.pki, lab.revoked, lab.model)
        response = ask(own, tagged_device(lab.pki), roleSessionName="ci-7")
    finally:
        running.process.terminate()
        _, err = running.process.communicate(timeout=30)
    assert response.status == 403
    assert "Not authorized to set roleSessionName. (the profile" in err
    assert "acceptRoleSessionName false" in err
