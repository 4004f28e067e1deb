"""The emulator as an offline Roles Anywhere: a model file of trust anchors, profiles, roles and
CRLs, each rule of CreateSession each way, over real HTTP to ``hwsigner emulator --config``.
Certificates are made for each case; requests are signed by hwsigner's own signer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hwsigner.devpki import CaKey, DevPki, make_ca, make_crl, pem
from hwsigner.identity import Identity
from hwsigner.keys.file import FileKey
from hwsigner.transport import Response

from .conftest import start_emulator, stop
from .helpers import ACCOUNT, REGION
from .test_emulator_rules import (
    DIGITAL_SIGNATURE,
    Device,
    Emu,
    granted,
    refused,
    send,
    session_url,
    signed,
)

RA = f"arn:aws:rolesanywhere:{REGION}:{ACCOUNT}"
TA, TA_OTHER, TA_OFF, TA_STRANGER = (
    f"{RA}:trust-anchor/{n}" for n in ("main", "other", "off", "stranger")
)
PROFILE, PROFILE_NAMED, PROFILE_OFF = (f"{RA}:profile/{n}" for n in ("plain", "named", "off"))
ROLE_OU, ROLE_SOURCE, ROLE_OPEN, ROLE_MISSING = (
    f"arn:aws:iam::{ACCOUNT}:role/{n}" for n in ("by-ou", "by-source", "open", "missing")
)
ALLOW = {"Effect": "Allow", "Principal": {"Service": "rolesanywhere.amazonaws.com"}}
ACTIONS = ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]
NOT_AUTHORIZED = "Not authorized to perform sts:AssumeRole"


def policy(condition: dict[str, object] | None = None) -> dict[str, object]:
    statement = {**ALLOW, "Action": ACTIONS, **({"Condition": condition} if condition else {})}
    return {"Version": "2012-10-17", "Statement": [statement]}


def anchor(arn: str, cert: x509.Certificate, enabled: bool = True) -> dict[str, object]:
    data = {"x509CertificateData": pem(cert).decode()}
    return {
        "trustAnchorArn": arn,
        "enabled": enabled,
        "source": {"sourceType": "CERTIFICATE_BUNDLE", "sourceData": data},
        "name": "ignored",
    }


@dataclass(frozen=True)
class Lab:
    emu: Emu
    pki: DevPki
    revoked: Device
    model: Path
    forged: Device | None = None  # listed by a CRL under the issuing CA's name, not its key


def subject(cn: str, ou: str | None = "Devices") -> x509.Name:
    parts = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Corp")]
    if ou:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    return x509.Name([*parts, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_leaf(
    public_key: ec.EllipticCurvePublicKey,
    issuer: tuple[x509.Certificate, CaKey],
    name: x509.Name,
    *,
    san: tuple[x509.GeneralName, ...] = (),
    basic_constraints: bool = True,
) -> x509.Certificate:
    """A leaf of ``issuer`` with keyUsage digitalSignature, a subjectAltName, and with or
    without basicConstraints CA:FALSE."""
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(DIGITAL_SIGNATURE, critical=True)
    )
    if basic_constraints:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    return builder.sign(issuer[1], hashes.SHA256())


def device(
    pki: DevPki,
    cn: str = "dev-1",
    ou: str | None = "Devices",
    *,
    issuer: tuple[x509.Certificate, CaKey] | None = None,
    chain: tuple[x509.Certificate, ...] | None = None,
    basic_constraints: bool = True,
) -> Device:
    key = ec.generate_private_key(ec.SECP256R1())
    name = subject(cn, ou)
    cert = make_leaf(
        key.public_key(), issuer or pki.issuing, name, basic_constraints=basic_constraints
    )
    return Device(Identity(cert, chain or (pki.issuing[0],)), FileKey(key))


@pytest.fixture(scope="module")
def lab(pki: DevPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from running_lab(pki, tmp_path_factory)


def running_lab(pki: DevPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """``hwsigner emulator --config`` with a model of four trust anchors (one disabled, one of
    another PKI), three profiles, three roles and a CRL; its clock fixed."""
    stranger = DevPki.create(tmp_path_factory.mktemp("stranger"))
    revoked = device(pki, "revoked-1")
    crl = make_crl([revoked.identity.certificate.serial_number], pki.issuing)
    forged = device(pki, "forged-1")
    impostor = (pki.issuing[0], stranger.issuing[1])  # the issuing CA's name, another key
    forged_crl = make_crl([forged.identity.certificate.serial_number], impostor)
    model = {
        "trustAnchors": [
            anchor(TA, pki.root[0]),
            anchor(TA_OTHER, pki.root[0]),
            anchor(TA_OFF, pki.root[0], enabled=False),
            {"trustAnchor": anchor(TA_STRANGER, stranger.root[0])},  # get-trust-anchor's shape
        ],
        "profiles": [
            {
                "profileArn": PROFILE,
                "enabled": True,
                "roleArns": [ROLE_OU, ROLE_SOURCE, ROLE_OPEN, ROLE_MISSING],
                "durationSeconds": 3600,
            },
            {
                "profileArn": PROFILE_NAMED,
                "enabled": True,
                "roleArns": [ROLE_OPEN],
                "durationSeconds": 43200,
                "acceptRoleSessionName": True,
                "requireInstanceProperties": True,
                "attributeMappings": [
                    {
                        "certificateField": "x509Subject",
                        "mappingRules": [{"specifier": "CN"}, {"specifier": "OU"}],
                    }
                ],
            },
            {"profileArn": PROFILE_OFF, "enabled": False, "roleArns": [ROLE_OPEN]},
        ],
        "roles": [
            {
                "Arn": ROLE_OU,
                "MaxSessionDuration": 7200,
                "AssumeRolePolicyDocument": policy(
                    {"StringEquals": {"aws:PrincipalTag/x509Subject/OU": "Devices"}}
                ),
            },
            {
                "Role": {  # aws iam get-role's shape, the document URL-encoded as IAM's API has it
                    "Arn": ROLE_SOURCE,
                    "AssumeRolePolicyDocument": json.dumps(
                        policy({"ArnEquals": {"aws:SourceArn": TA}})
                    )
                    .replace("{", "%7B")
                    .replace("}", "%7D"),
                }
            },
            {"Arn": ROLE_OPEN, "MaxSessionDuration": 43200, "AssumeRolePolicyDocument": policy()},
        ],
        "crls": [
            {"trustAnchorArn": TA, "enabled": True, "crlData": make_crl_pem(crl)},
            {"trustAnchorArn": TA, "crlData": make_crl_pem(forged_crl)},
        ],
    }
    path = tmp_path_factory.mktemp("model") / "model.json"
    path.write_text(json.dumps(model))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    running = start_emulator(extra=("--config", str(path), "--now", now.isoformat()))
    yield Lab(Emu(running.url, now), pki, revoked, path, forged)
    stop(running.process)


def pem_crl(crl: x509.CertificateRevocationList) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return crl.public_bytes(Encoding.PEM)


def make_crl_pem(crl: x509.CertificateRevocationList) -> str:
    return pem_crl(crl).decode()


def ask(
    lab: Lab,
    dev: Device,
    *,
    trust_anchor: str = TA,
    profile: str = PROFILE,
    role: str = ROLE_OPEN,
    **body: object,
) -> Response:
    url = session_url(lab.emu.url, trust_anchor, profile, role)
    payload = json.dumps({"durationSeconds": 3600, **body}).encode()
    return send(signed(lab.emu, dev, url=url, body=payload))


def expires_after(response: Response, lab: Lab) -> int:
    entry = granted(response)["credentialSet"][0]  # type: ignore[index]
    expiration = datetime.strptime(entry["credentials"]["expiration"], "%Y-%m-%dT%H:%M:%SZ")
    return int((expiration.replace(tzinfo=timezone.utc) - lab.emu.now).total_seconds())


# --- the trust policy ---------------------------------------------------------------------------


def test_a_trust_policy_on_the_subject_ou_allows_that_ou(lab: Lab) -> None:
    granted(ask(lab, device(lab.pki, ou="Devices"), role=ROLE_OU))


@pytest.mark.parametrize("ou", ["Laptops", None])
def test_a_trust_policy_on_the_subject_ou_refuses_another_or_none(lab: Lab, ou: str | None) -> None:
    response = ask(lab, device(lab.pki, ou=ou), role=ROLE_OU)
    refused(response, 403, "AccessDeniedException", NOT_AUTHORIZED, "x509Subject/OU")


def test_a_trust_policy_on_the_source_arn_allows_that_trust_anchor(lab: Lab) -> None:
    granted(ask(lab, device(lab.pki), role=ROLE_SOURCE))


def test_a_trust_policy_on_the_source_arn_refuses_another_trust_anchor(lab: Lab) -> None:
    response = ask(lab, device(lab.pki), role=ROLE_SOURCE, trust_anchor=TA_OTHER)
    refused(response, 403, "AccessDeniedException", NOT_AUTHORIZED, "aws:SourceArn")


def test_a_role_missing_from_the_model_is_refused(lab: Lab) -> None:
    response = ask(lab, device(lab.pki), role=ROLE_MISSING)
    refused(response, 403, "AccessDeniedException", NOT_AUTHORIZED, "no role")


# --- trust anchors and CRLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trust_anchor", "reason"),
    [
        (f"{RA}:trust-anchor/unknown", "no trust anchor"),
        (TA_OFF, "disabled"),
        (TA_STRANGER, "no chain to the trust anchor"),
    ],
)
def test_a_trust_anchor_that_is_absent_disabled_or_not_the_issuer_is_refused(
    lab: Lab, trust_anchor: str, reason: str
) -> None:
    response = ask(lab, device(lab.pki), trust_anchor=trust_anchor)
    refused(response, 403, "AccessDeniedException", "Untrusted signing certificate", reason)


def test_a_certificate_the_crl_revokes_is_refused(lab: Lab) -> None:
    refused(ask(lab, lab.revoked), 403, "AccessDeniedException", "Certificate revoked", "revoked")


def test_the_crl_applies_only_to_its_trust_anchor(lab: Lab) -> None:
    granted(ask(lab, lab.revoked, trust_anchor=TA_OTHER))


def test_a_crl_its_issuer_did_not_sign_revokes_nothing(lab: Lab) -> None:
    assert lab.forged is not None
    granted(ask(lab, lab.forged))


def test_a_crl_flag_beside_the_model_applies_to_every_trust_anchor_before_the_profile(
    lab: Lab, tmp_path: Path
) -> None:
    """``--crl FILE`` is a model CRL that names no trust anchor: it refuses the certificate the
    model's CRL refuses only under TA, under TA_OTHER too, and before the profile is looked at."""
    crl = tmp_path / "issuing.crl"
    crl.write_bytes(pem_crl(lab.pki.revoke([lab.revoked.identity.certificate])))
    extra = ("--config", str(lab.model), "--crl", str(crl), "--now", lab.emu.now.isoformat())
    running = start_emulator(extra=extra)
    try:
        with_crl = Lab(Emu(running.url, lab.emu.now), lab.pki, lab.revoked, lab.model)
        for trust_anchor, profile in ((TA_OTHER, PROFILE), (TA_OTHER, PROFILE_OFF)):
            response = ask(with_crl, lab.revoked, trust_anchor=trust_anchor, profile=profile)
            refused(response, 403, "AccessDeniedException", "Certificate revoked", "revoked by")
        granted(ask(with_crl, device(lab.pki), trust_anchor=TA_OTHER))
    finally:
        stop(running.process)


# --- the certificate rules the model's issue found accepted -------------------------------------


def test_a_leaf_without_basic_constraints_is_refused(lab: Lab) -> None:
    response = ask(lab, device(lab.pki, basic_constraints=False))
    refused(response, 403, "AccessDeniedException", "basicConstraints")


@pytest.mark.parametrize(("limit", "allowed"), [(0, False), (1, True)])
def test_a_chain_longer_than_the_roots_path_length_is_refused(
    lab: Lab, tmp_path: Path, limit: int, allowed: bool
) -> None:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (make_ca("path root", root_key, path_length=limit), root_key)
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing = (make_ca("path issuing", issuing_key, root), issuing_key)
    model = json.loads(lab.model.read_text())
    model["trustAnchors"] = [anchor(TA, root[0])]
    path = tmp_path / "path.json"
    path.write_text(json.dumps(model))
    running = start_emulator(extra=("--config", str(path), "--now", lab.emu.now.isoformat()))
    try:
        own = Lab(Emu(running.url, lab.emu.now), lab.pki, lab.revoked, path)
        response = ask(own, device(lab.pki, issuer=issuing, chain=(issuing[0],)))
    finally:
        stop(running.process)
    if allowed:
        granted(response)
    else:
        refused(response, 403, "AccessDeniedException", "Untrusted", "constraint allows 0")


# --- profiles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "role", "reason"),
    [
        (f"{RA}:profile/unknown", ROLE_OPEN, "no profile"),
        (PROFILE_OFF, ROLE_OPEN, "disabled"),
        (PROFILE_NAMED, ROLE_OU, "does not list"),
    ],
)
def test_a_profile_absent_disabled_or_without_the_role_is_refused(
    lab: Lab, profile: str, role: str, reason: str
) -> None:
    response = ask(lab, device(lab.pki), profile=profile, role=role, instanceProperties={"a": "b"})
    refused(response, 403, "AccessDeniedException", NOT_AUTHORIZED, reason)


def test_a_role_session_name_the_profile_does_not_accept_is_refused(lab: Lab) -> None:
    response = ask(lab, device(lab.pki), roleSessionName="ci-job-7")
    refused(
        response,
        403,
        "AccessDeniedException",
        "Not authorized to set roleSessionName.",
        "acceptRoleSessionName",
    )


def test_a_role_session_name_the_profile_accepts_names_the_session(lab: Lab) -> None:
    response = ask(
        lab,
        device(lab.pki),
        profile=PROFILE_NAMED,
        roleSessionName="ci-job-7",
        instanceProperties={"site": "lab-3"},
    )
    entry = granted(response)["credentialSet"][0]  # type: ignore[index]
    assert entry["assumedRoleUser"]["arn"].endswith("/open/ci-job-7")


@pytest.mark.parametrize(
    ("properties", "status", "needle"),
    [
        (None, 400, "Instance properties are required"),
        ({"site": "x" * 201}, 400, "instanceProperties"),
        ({"site": "lab-3"}, 201, ""),
    ],
)
def test_instance_properties_the_profile_requires(
    lab: Lab, properties: dict[str, str] | None, status: int, needle: str
) -> None:
    extra = {} if properties is None else {"instanceProperties": properties}
    response = ask(lab, device(lab.pki), profile=PROFILE_NAMED, **extra)
    if status == 201:
        granted(response)
    else:
        refused(response, status, "ValidationException", needle)


@pytest.mark.parametrize(
    ("profile", "role", "asked", "expected"),
    [
        (PROFILE, ROLE_OU, 43200, 3600),  # the profile's 3600
        (PROFILE, ROLE_OU, 900, 900),  # the request's
        (PROFILE_NAMED, ROLE_OPEN, 43200, 43200),  # profile 43200, role 43200
    ],
)
def test_the_duration_is_the_least_of_request_profile_and_role(
    lab: Lab, profile: str, role: str, asked: int, expected: int
) -> None:
    response = ask(
        lab,
        device(lab.pki),
        profile=profile,
        role=role,
        durationSeconds=asked,
        instanceProperties={"a": "b"},
    )
    assert expires_after(response, lab) == expected


def test_the_role_max_session_duration_caps_the_profile(lab: Lab, tmp_path: Path) -> None:
    model = json.loads(lab.model.read_text())
    model["profiles"][0]["durationSeconds"] = 43200  # the role by-ou allows 7200
    path = tmp_path / "long.json"
    path.write_text(json.dumps(model))
    running = start_emulator(extra=("--config", str(path), "--now", lab.emu.now.isoformat()))
    try:
        own = Lab(Emu(running.url, lab.emu.now), lab.pki, lab.revoked, path)
        response = ask(own, device(lab.pki), role=ROLE_OU, durationSeconds=43200)
    finally:
        stop(running.process)
    assert expires_after(response, own) == 7200


# --- docs/emulator.md ---------------------------------------------------------------------------


def test_the_documented_trust_policy_decides_as_the_page_says() -> None:
    from hwsigner.emulator.policy import evaluate, parse_policy

    from .helpers import REPO

    page = (REPO / "docs" / "emulator.md").read_text()
    heredoc = page.split("cat > trust-policy.json <<'END'\n", 1)[1].split("\nEND\n", 1)[0]
    statements = parse_policy(json.loads(heredoc))
    source = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta"
    actions = ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]

    def context(ou: str) -> dict[str, list[str]]:
        return {"aws:principaltag/x509subject/ou": [ou], "aws:sourcearn": [source]}

    assert evaluate(statements, context("Devices"), actions) == ""
    why = evaluate(statements, context("Laptops"), actions)
    assert why == (
        "no statement allows sts:AssumeRole: Statement[0]: StringEquals "
        "aws:PrincipalTag/x509Subject/OU ['Devices'] is false (the request has ['Laptops'])"
    )
    assert why in " ".join(page.split())
