"""The emulator holds signed requests to the service's rules: it grants good ones and refuses
each broken rule with AWS's status, error type and message. Requests are signed by hwsigner's own
signer and sent over loopback to ``hwsigner emulator`` running as a subprocess with a fixed clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from hwsigner.credentials import parse_time
from hwsigner.devpki import DevPki, new_key
from hwsigner.identity import Identity
from hwsigner.keys import KeyBackend
from hwsigner.keys.file import FileKey
from hwsigner.rolesanywhere import request_credentials
from hwsigner.settings import Settings
from hwsigner.sigv4x509 import Request, sign
from hwsigner.transport import HttpTransport, Response

from .conftest import start_emulator, stop
from .helpers import PROFILE_ARN, REGION, ROLE_ARN, TRUST_ANCHOR_ARN

CA = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
DIGITAL_SIGNATURE = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
KEY_ENCIPHERMENT = x509.KeyUsage(False, False, True, False, False, False, False, False, False)


# --- signing and sending ------------------------------------------------------------------------


@dataclass(frozen=True)
class Emu:
    url: str
    now: datetime  # the emulator's fixed clock


@dataclass(frozen=True)
class Device:
    identity: Identity
    key: KeyBackend


def session_url(
    base: str,
    trust_anchor: str = TRUST_ANCHOR_ARN,
    profile: str = PROFILE_ARN,
    role: str = ROLE_ARN,
) -> str:
    query = "&".join(
        f"{name}={quote(value, safe='')}"
        for name, value in (
            ("profileArn", profile),
            ("roleArn", role),
            ("trustAnchorArn", trust_anchor),
        )
    )
    return f"{base}/sessions?{query}"


def signed(
    emu: Emu,
    device: Device,
    *,
    body: bytes = b'{"durationSeconds":3600}',
    url: str | None = None,
    region: str = REGION,
    now: datetime | None = None,
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),),
) -> Request:
    request = Request("POST", url or session_url(emu.url), headers, body)
    return sign(request, device.identity.signer(device.key), region, now or emu.now).request


def with_header(request: Request, name: str, value: str | None) -> Request:
    """The request with header ``name`` replaced (or removed when ``value`` is None)."""
    kept = tuple((n, v) for n, v in request.headers if n.lower() != name.lower())
    added = ((name, value),) if value is not None else ()
    return replace(request, headers=kept + added)


def send(request: Request) -> Response:
    return HttpTransport()(request)


def granted(response: Response) -> dict[str, object]:
    assert response.status == 201, response.body
    body = json.loads(response.body)
    assert isinstance(body, dict)
    return body


def refused(
    response: Response, status: int, error_type: str, needle: str = "", reason: str = ""
) -> str:
    """The service's status, type and message; the precise ``reason`` in the side channel."""
    assert response.status == status, response.body
    assert response.headers["x-amzn-errortype"] == error_type
    message = json.loads(response.body)["message"]
    assert needle in message
    assert reason in response.headers["x-hwsigner-emulator-reason"]
    return message


# --- certificates -------------------------------------------------------------------------------


def leaf(
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    issuer: CA,
    now: datetime,
    *,
    ca: bool = False,
    usage: x509.KeyUsage | None = DIGITAL_SIGNATURE,
    valid: tuple[timedelta, timedelta] = (timedelta(days=-1), timedelta(days=30)),
    common_name: str = "odd device",
) -> x509.Certificate:
    """A leaf with the properties a test needs, built with ``cryptography`` directly."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer[0].subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid[0])
        .not_valid_after(now + valid[1])
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(issuer[1], hashes.SHA256())


def resigned(
    cert: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    sha1: bool = False,
    v1: bool = False,
    twice: bool = False,
) -> x509.Certificate:
    """``cert`` re-signed with ECDSA-SHA1, made X.509 v1, or with its extensions twice:
    certificates ``cryptography`` does not build."""
    parsed = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))
    tbs = parsed["tbs_certificate"]
    if v1:
        tbs["version"] = "v1"
        tbs["extensions"] = None
    if twice:
        extensions = list(tbs["extensions"])
        tbs["extensions"] = asn1_x509.Extensions(extensions + [e.copy() for e in extensions])
    algorithm = asn1_x509.SignedDigestAlgorithm(
        {"algorithm": "sha1_ecdsa" if sha1 else "sha256_ecdsa"}
    )
    tbs["signature"] = algorithm
    parsed["signature_algorithm"] = algorithm
    digest = hashes.SHA1() if sha1 else hashes.SHA256()  # noqa: S303 - the point of the test
    parsed["signature_value"] = issuer_key.sign(tbs.dump(force=True), ec.ECDSA(digest))
    return x509.load_der_x509_certificate(parsed.dump(force=True))


def device_with(
    cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, *chain: x509.Certificate
) -> Device:
    return Device(Identity(cert, tuple(chain)), FileKey(key))


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu(pki: DevPki) -> Iterator[Emu]:
    """``hwsigner emulator`` trusting the dev root CA, its clock fixed at the fixture's start."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    running = start_emulator(pki.root_cert, extra=("--now", now.strftime("%Y-%m-%dT%H:%M:%SZ")))
    yield Emu(running.url, now)
    stop(running.process)


@pytest.fixture(scope="module")
def device(pki: DevPki) -> Device:
    """An EC P-256 key with a leaf from the issuing CA, sent with the issuing CA as its chain."""
    key = new_key("ec-p256")
    cert = pki.issue(key.public_key(), "emulator-device")
    return Device(Identity(cert, (pki.issuing[0],)), FileKey(key))


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# --- granted ------------------------------------------------------------------------------------


def test_a_good_request_gets_aws_shaped_fresh_credentials(emu: Emu, device: Device) -> None:
    first, second = (granted(send(signed(emu, device))) for _ in range(2))
    assert list(first) == ["credentialSet", "subjectArn"]
    entry = first["credentialSet"][0]  # type: ignore[index]
    assert set(entry) == {
        "credentials",
        "assumedRoleUser",
        "roleArn",
        "sourceIdentity",
        "packedPolicySize",
    }
    creds = entry["credentials"]
    assert creds["accessKeyId"].startswith("ASIA") and len(creds["accessKeyId"]) == 20
    assert creds["accessKeyId"].isalnum() and creds["accessKeyId"].isupper()
    assert len(creds["secretAccessKey"]) == 40
    assert len(creds["sessionToken"]) > 300
    assert creds["expiration"] == (emu.now + timedelta(seconds=3600)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert entry["roleArn"] == ROLE_ARN
    serial_hex = format(device.identity.certificate.serial_number, "x")
    assert entry["assumedRoleUser"]["arn"] == (
        f"arn:aws:sts::111122223333:assumed-role/hwsigner-test/{serial_hex}"
    )
    assert entry["assumedRoleUser"]["assumedRoleId"].endswith(f":{serial_hex}")
    assert entry["sourceIdentity"] == "CN=emulator-device"
    assert first["subjectArn"].startswith(f"arn:aws:rolesanywhere:{REGION}:111122223333:subject/")
    other = second["credentialSet"][0]["credentials"]  # type: ignore[index]
    for name in ("accessKeyId", "secretAccessKey", "sessionToken"):
        assert other[name] != creds[name]


@pytest.mark.parametrize("kind", ["rsa-2048", "rsa-3072", "ec-p256", "ec-p384", "ec-p521"])
def test_every_key_type_is_granted(emu: Emu, pki: DevPki, kind: str) -> None:
    key = new_key(kind)
    cert = pki.issue(key.public_key(), f"emulator-{kind}")
    granted(send(signed(emu, Device(Identity(cert, (pki.issuing[0],)), FileKey(key)))))


def test_a_leaf_of_the_root_needs_no_chain(emu: Emu, pki: DevPki, ec_key) -> None:
    cert = pki.issue(ec_key.public_key(), "by-root", by_root=True)
    granted(send(signed(emu, device_with(cert, ec_key))))


def test_the_hwsigner_client_gets_credentials(emu: Emu, device: Device) -> None:
    params = Settings(
        trust_anchor_arn=TRUST_ANCHOR_ARN,
        profile_arn=PROFILE_ARN,
        role_arn=ROLE_ARN,
        session_duration=900,
        role_session_name="ci-job_42@example.com",
        endpoint=emu.url,
    )
    creds = request_credentials(params, device.identity, device.key, env={}, clock=lambda: emu.now)
    assert creds.expiration == emu.now + timedelta(seconds=900)
    assert creds.access_key_id.startswith("ASIA")


def test_role_session_name_names_the_session(emu: Emu, device: Device) -> None:
    body = b'{"durationSeconds":900,"roleSessionName":"ci-job_42@example.com"}'
    entry = granted(send(signed(emu, device, body=body)))["credentialSet"][0]  # type: ignore[index]
    assert entry["assumedRoleUser"]["arn"].endswith("/hwsigner-test/ci-job_42@example.com")


@pytest.mark.parametrize("duration", [900, 43200])
def test_duration_bounds_are_accepted(emu: Emu, device: Device, duration: int) -> None:
    body = json.dumps({"durationSeconds": duration}).encode()
    entry = granted(send(signed(emu, device, body=body)))["credentialSet"][0]  # type: ignore[index]
    expected = min(
        emu.now + timedelta(seconds=duration), device.identity.certificate.not_valid_after_utc
    )
    assert parse_time(entry["credentials"]["expiration"]) == expected


@pytest.mark.parametrize("minutes", [-4, 4])
def test_a_date_within_five_minutes_is_accepted(emu: Emu, device: Device, minutes: int) -> None:
    granted(send(signed(emu, device, now=emu.now + timedelta(minutes=minutes))))


def test_arns_may_come_in_the_body(emu: Emu, device: Device) -> None:
    body = json.dumps(
        {
            "durationSeconds": 900,
            "profileArn": PROFILE_ARN,
            "roleArn": ROLE_ARN,
            "trustAnchorArn": TRUST_ANCHOR_ARN,
        }
    ).encode()
    granted(send(signed(emu, device, body=body, url=f"{emu.url}/sessions")))


def test_five_chain_certificates_are_accepted(emu: Emu, pki: DevPki, device: Device) -> None:
    extra = DevPki.create(pki.directory / "five").issuing[0]
    chain = (pki.issuing[0], extra, pki.root[0], extra, pki.root[0])
    wide = Device(Identity(device.identity.certificate, chain), device.key)
    granted(send(signed(emu, wide)))


# --- refused: the signature and its parts -------------------------------------------------------


def test_an_unsigned_request_is_refused(emu: Emu, device: Device) -> None:
    request = with_header(signed(emu, device), "Authorization", None)
    refused(send(request), 403, "AccessDeniedException", "Missing Authorization")


def test_a_wrong_serial_is_refused_though_the_signature_holds(emu: Emu, device: Device) -> None:
    request = signed(emu, device)
    auth = dict(request.headers)["Authorization"]
    serial = device.identity.certificate.serial_number
    for wrong in (str(serial + 1), format(serial, "x"), f"0{serial}"):
        forged = auth.replace(f"Credential={serial}/", f"Credential={wrong}/")
        response = send(with_header(request, "Authorization", forged))
        refused(response, 403, "AccessDeniedException", "serial")


class MismatchedKey(KeyBackend):
    """Claims an EC key (so the signer picks ECDSA) but signs with an RSA key."""

    def __init__(self, rsa_key: rsa.RSAPrivateKey) -> None:
        self._rsa = FileKey(rsa_key)
        self._ec = ec.generate_private_key(ec.SECP256R1()).public_key()

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._ec

    def sign(self, message: bytes, digest: str = "SHA256") -> bytes:  # type: ignore[override]
        return self._rsa.sign(message)


def test_an_algorithm_that_does_not_match_the_key_is_refused(emu: Emu, pki: DevPki) -> None:
    rsa_key = new_key("rsa-2048")
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    cert = pki.issue(rsa_key.public_key(), "rsa-but-ecdsa", by_root=True)
    request = signed(emu, Device(Identity(cert), MismatchedKey(rsa_key)))
    assert dict(request.headers)["Authorization"].startswith("AWS4-X509-ECDSA-SHA256 ")
    refused(send(request), 403, "AccessDeniedException", "AWS4-X509-RSA-SHA256")


@pytest.mark.parametrize("minutes", [-6, 6])
def test_a_skewed_date_is_refused(emu: Emu, device: Device, minutes: int) -> None:
    response = send(signed(emu, device, now=emu.now + timedelta(minutes=minutes)))
    needle = "Signature expired" if minutes < 0 else "Signature not yet current"
    refused(response, 403, "AccessDeniedException", needle)


def test_an_unsigned_content_type_is_refused(emu: Emu, device: Device) -> None:
    request = signed(emu, device, headers=())
    request = replace(request, headers=(*request.headers, ("Content-Type", "application/json")))
    refused(send(request), 403, "AccessDeniedException", "content-type")


def test_an_unsigned_chain_header_is_refused(emu: Emu, device: Device) -> None:
    bare = Device(Identity(device.identity.certificate), device.key)
    request = signed(emu, bare)
    chain = dict(signed(emu, device).headers)["X-Amz-X509-Chain"]
    refused(
        send(with_header(request, "X-Amz-X509-Chain", chain)),
        403,
        "AccessDeniedException",
        "x-amz-x509-chain",
    )


def test_a_scope_for_another_service_is_refused(emu: Emu, device: Device) -> None:
    request = signed(emu, device)
    auth = dict(request.headers)["Authorization"].replace("/rolesanywhere/", "/sts/")
    refused(
        send(with_header(request, "Authorization", auth)), 403, "AccessDeniedException", "service"
    )


def test_a_tampered_body_is_refused(emu: Emu, device: Device) -> None:
    request = replace(signed(emu, device), body=b'{"durationSeconds":3601}')
    refused(send(request), 403, "AccessDeniedException", "Invalid signature")


# --- refused: the certificate and its chain -----------------------------------------------------


def test_an_untrusted_anchor_is_refused(emu: Emu, pki: DevPki, ec_key) -> None:
    stranger = DevPki.create(pki.directory / "stranger")
    cert = stranger.issue(ec_key.public_key(), "stranger")
    response = send(signed(emu, device_with(cert, ec_key, stranger.issuing[0])))
    refused(response, 403, "AccessDeniedException", "Untrusted signing certificate")


def test_a_missing_intermediate_is_refused(emu: Emu, device: Device) -> None:
    bare = Device(Identity(device.identity.certificate), device.key)
    refused(send(signed(emu, bare)), 403, "AccessDeniedException", "Untrusted signing certificate")


def test_an_intermediate_with_the_right_name_but_another_key_is_refused(
    emu: Emu, pki: DevPki, device: Device
) -> None:
    """Issuer names match all the way up; the intermediate's signature does not."""
    impostor_key = ec.generate_private_key(ec.SECP256R1())
    issuing = pki.issuing[0]
    impostor = (
        x509.CertificateBuilder()
        .subject_name(issuing.subject)
        .issuer_name(issuing.issuer)
        .public_key(issuing.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(issuing.not_valid_before_utc)
        .not_valid_after(issuing.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(impostor_key, hashes.SHA256())
    )
    forged = Device(Identity(device.identity.certificate, (impostor,)), device.key)
    refused(
        send(signed(emu, forged)), 403, "AccessDeniedException", "Untrusted signing certificate"
    )


def test_an_expired_intermediate_is_refused(emu: Emu, pki: DevPki, ec_key) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    old_ca = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old issuing CA")]))
        .issuer_name(pki.root[0].subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(emu.now - timedelta(days=30))
        .not_valid_after(emu.now - timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(pki.root[1], hashes.SHA256())
    )
    cert = leaf(ec_key.public_key(), (old_ca, ca_key), emu.now)
    response = send(signed(emu, device_with(cert, ec_key, old_ca)))
    refused(
        response,
        403,
        "AccessDeniedException",
        "Untrusted signing certificate",
        reason="intermediate certificate has expired",
    )


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("expired", "signing certificate has expired"),
        ("not yet valid", "signing certificate is not yet valid"),
        ("CA", "must not be a CA"),
        ("no digitalSignature", "digitalSignature"),
        ("no key usage", "digitalSignature"),
        ("SHA-1", "SHA1"),
        ("X.509 v1", "X.509 v3"),
        ("extensions twice", "basicConstraints"),
    ],
)
def test_a_leaf_that_breaks_a_rule_is_refused(
    emu: Emu, pki: DevPki, ec_key, case: str, needle: str
) -> None:
    issuing = pki.issuing
    public = ec_key.public_key()
    cert = {
        "expired": lambda: leaf(
            public, issuing, emu.now, valid=(timedelta(days=-30), timedelta(days=-1))
        ),
        "not yet valid": lambda: leaf(
            public, issuing, emu.now, valid=(timedelta(hours=1), timedelta(days=9))
        ),
        "CA": lambda: leaf(public, issuing, emu.now, ca=True),
        "no digitalSignature": lambda: leaf(public, issuing, emu.now, usage=KEY_ENCIPHERMENT),
        "no key usage": lambda: leaf(public, issuing, emu.now, usage=None),
        "SHA-1": lambda: resigned(leaf(public, issuing, emu.now), issuing[1], sha1=True),
        "X.509 v1": lambda: resigned(leaf(public, issuing, emu.now), issuing[1], v1=True),
        "extensions twice": lambda: resigned(
            leaf(public, issuing, emu.now), issuing[1], twice=True
        ),
    }[case]()
    response = send(signed(emu, device_with(cert, ec_key, issuing[0])))
    refused(response, 403, "AccessDeniedException", needle)


def test_the_same_leaf_resigned_properly_is_granted(emu: Emu, pki: DevPki, ec_key) -> None:
    """The re-signing helper itself makes certificates the emulator accepts."""
    cert = resigned(leaf(ec_key.public_key(), pki.issuing, emu.now), pki.issuing[1])
    granted(send(signed(emu, device_with(cert, ec_key, pki.issuing[0]))))


def test_six_chain_certificates_are_refused(emu: Emu, pki: DevPki, device: Device) -> None:
    chain = (pki.issuing[0],) + (pki.root[0],) * 5
    wide = Device(Identity(device.identity.certificate, chain), device.key)
    refused(send(signed(emu, wide)), 400, "ValidationException", "at most 5")


# --- refused: the parameters --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"durationSeconds":899}', "greater than or equal to 900"),
        (b'{"durationSeconds":43201}', "less than or equal to 43200"),
        (b'{"durationSeconds":"3600"}', "integer"),
        (b'{"durationSeconds":3600.5}', "integer"),
        (b'{"durationSeconds":900,"roleSessionName":"a"}', "roleSessionName"),
        (b'{"durationSeconds":900,"roleSessionName":"has space"}', "roleSessionName"),
        (b'{"durationSeconds":900,"roleSessionName":"' + b"x" * 65 + b'"}', "roleSessionName"),
        (b'{"durationSeconds":900', "not valid JSON"),
        (b"[900]", "JSON object"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
)
def test_a_bad_body_is_a_validation_error(
    emu: Emu, device: Device, body: bytes, needle: str
) -> None:
    refused(send(signed(emu, device, body=body)), 400, "ValidationException", needle)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trust_anchor", "arn:aws:rolesanywhere:us-east-1:111122223333:profile/pr-0001"),
        ("trust_anchor", "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/"),
        ("profile", "arn:aws:rolesanywhere:us-east-1:1111:profile/pr-0001"),
        ("profile", "not-an-arn"),
        ("role", "arn:aws:iam:us-east-1:111122223333:role/r"),
        ("role", "arn:aws:sts::111122223333:role/r"),
    ],
)
def test_a_malformed_arn_is_a_validation_error(
    emu: Emu, device: Device, field: str, value: str
) -> None:
    url = session_url(emu.url, **{field: value})
    refused(send(signed(emu, device, url=url)), 400, "ValidationException", value[:20])


def test_a_missing_arn_is_a_validation_error(emu: Emu, device: Device) -> None:
    url = session_url(emu.url).replace("&roleArn=", "&otherArn=")
    refused(send(signed(emu, device, url=url)), 400, "ValidationException", "roleArn")


def test_a_scope_in_another_region_is_403_as_sigv4_services_answer(
    emu: Emu, device: Device
) -> None:
    response = send(signed(emu, device, region="us-west-2"))
    refused(
        response,
        403,
        "AccessDeniedException",
        "Credential should be scoped to a valid region",
        reason="trustAnchorArn is in region us-east-1, but the request is signed for us-west-2",
    )


def test_arns_of_two_regions_are_refused(emu: Emu, device: Device) -> None:
    profile = PROFILE_ARN.replace(REGION, "eu-west-1")
    response = send(signed(emu, device, url=session_url(emu.url, profile=profile)))
    refused(response, 403, "AccessDeniedException", reason="profileArn is in region eu-west-1")


# --- routes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/session"), ("GET", "/sessions"), ("POST", "/sessions/x"), ("GET", "/")],
)
def test_other_paths_are_not_found(emu: Emu, method: str, path: str) -> None:
    response = send(Request(method, emu.url + path, (), b""))
    refused(response, 404, "ResourceNotFoundException")
