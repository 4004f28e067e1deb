"""ML-DSA-44/65/87 (FIPS 204) file keys and certificates, end to end.

The independent evidence is ``cryptography``'s ML-DSA (OpenSSL 3.5 inside its wheel): Debian 12's
``openssl`` command is 3.0 and has no ML-DSA, so no second tool checks these signatures here.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa

from hwsigner import sigv4x509
from hwsigner.devpki import DevPki, key_pem, make_ca, make_leaf, new_key, pem, write_private
from hwsigner.identity import Identity
from hwsigner.keys.file import FileKey
from hwsigner.x509rules import LEAF_RULES, broken_rules

from .conftest import RunningEmulator, start_emulator, stop
from .helpers import (
    ARN_FLAGS,
    PROFILE_ARN,
    ROLE_ARN,
    TRUST_ANCHOR_ARN,
    assert_one_line_error,
    process_credentials,
    run_cli,
)

KINDS = ("ml-dsa-44", "ml-dsa-65", "ml-dsa-87")


@pytest.fixture(scope="module")
def mldsa_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, x509.Certificate, object]:
    """A root CA whose own key is ML-DSA-65: it signs with ML-DSA."""
    key = mldsa.MLDSA65PrivateKey.generate()
    cert = make_ca("ML-DSA root", key)
    path = tmp_path_factory.mktemp("mldsa-root") / "root.pem"
    path.write_bytes(pem(cert))
    return path, cert, key


@pytest.fixture(scope="module")
def emulator_both(
    pki: DevPki, mldsa_root: tuple[Path, x509.Certificate, object]
) -> Iterator[RunningEmulator]:
    """An emulator trusting the dev PKI's EC root and the ML-DSA root."""
    running = start_emulator(pki.root_cert, mldsa_root[0])
    yield running
    stop(running.process)


def leaf_files(
    directory: Path, kind: str, issuer: tuple[x509.Certificate, object]
) -> tuple[Path, Path]:
    key = new_key(kind)
    cert = make_leaf(key.public_key(), f"leaf-{kind}", issuer)  # type: ignore[arg-type]
    cert_path, key_path = directory / f"{kind}.pem", directory / f"{kind}.key"
    cert_path.write_bytes(pem(cert))
    write_private(key_path, key_pem(key))
    return cert_path, key_path


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_key_signs_the_string_to_sign_itself_with_pure_mldsa(kind: str) -> None:
    key = new_key(kind)
    message = b"AWS4-X509-MLDSA\n20260101T000000Z\nscope\nhash"
    signature = FileKey(key).sign(message, "SHA512")  # the digest does not apply
    key.public_key().verify(signature, message)  # type: ignore[union-attr,call-arg]
    with pytest.raises(InvalidSignature):
        key.public_key().verify(signature, message, b"ctx")  # type: ignore[union-attr,call-arg]
    assert sigv4x509.algorithm_for(key.public_key()) == "AWS4-X509-MLDSA"  # type: ignore[arg-type]


def test_the_request_is_signed_as_for_ecdsa_with_the_mldsa_algorithm(pki: DevPki) -> None:
    key = new_key("ml-dsa-65")
    leaf = pki.issue(key.public_key(), "signer")  # type: ignore[arg-type]
    signer = Identity(leaf).signer(FileKey(key))
    request = sigv4x509.Request("POST", "https://ra.example/sessions", (), b"{}")
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    signed = sigv4x509.sign(request, signer, "us-east-1", now)
    auth = dict(signed.request.headers)["Authorization"]
    assert auth.startswith(f"AWS4-X509-MLDSA Credential={leaf.serial_number}/20260301/us-east-1/")
    signature = bytes.fromhex(auth.rpartition("Signature=")[2])
    assert len(signature) == 3309  # FIPS 204: ML-DSA-65 signatures are 3309 bytes
    key.public_key().verify(signature, signed.string_to_sign.encode())  # type: ignore[union-attr,call-arg]


@pytest.mark.parametrize("kind", KINDS)
def test_the_rules_accept_mldsa_leaves_and_mldsa_signed_certificates(
    pki: DevPki, kind: str, mldsa_root: tuple[Path, x509.Certificate, object]
) -> None:
    now = datetime.now(timezone.utc)
    public = new_key(kind).public_key()
    assert broken_rules(pki.issue(public, "a"), now, LEAF_RULES) == []  # type: ignore[arg-type]
    _, root, root_key = mldsa_root
    assert broken_rules(make_leaf(public, "b", (root, root_key)), now) == []  # type: ignore[arg-type]


def test_sign_string_verifies_with_cryptography(tmp_path: Path) -> None:
    made = run_cli("keygen", "--private-key", tmp_path / "k.pem", "--algorithm", "ml-dsa-65")
    assert made.returncode == 0, made.stderr
    result = run_cli("sign-string", "--private-key", tmp_path / "k.pem", "--digest", "SHA384")
    assert result.returncode == 0, result.stderr
    signature = bytes.fromhex(json.loads(result.stdout))
    public = serialization.load_pem_public_key(made.stdout.encode())
    assert isinstance(public, mldsa.MLDSA65PublicKey)
    # AWS's helper signs the fixed test message itself for ML-DSA: no key-hash suffix
    public.verify(signature, b"AWS Roles Anywhere Credential Helper Signing Test1")


@pytest.mark.parametrize("encoding", ["pem", "der"])
def test_encrypted_pkcs8_keys_are_read(tmp_path: Path, encoding: str) -> None:
    key = mldsa.MLDSA44PrivateKey.generate()
    form = serialization.Encoding.PEM if encoding == "pem" else serialization.Encoding.DER
    data = key.private_bytes(
        form, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    path = tmp_path / f"k.{encoding}"
    path.write_bytes(data)
    result = run_cli(
        "sign-string", "--private-key", path, "--pkcs8-password", "pw", "--format", "text"
    )
    assert result.returncode == 0, result.stderr
    key.public_key().verify(
        bytes.fromhex(result.stdout), b"AWS Roles Anywhere Credential Helper Signing Test1"
    )


def test_read_certificate_data_names_the_parameter_set(pki: DevPki, tmp_path: Path) -> None:
    cert_path, _ = leaf_files(tmp_path, "ml-dsa-65", pki.issuing)
    result = run_cli("read-certificate-data", "--certificate", cert_path)
    data = json.loads(result.stdout)
    assert data["keyType"] == "ML-DSA-65"
    assert data["supportedAlgorithms"] == ["ML-DSA-65"]
    assert x509.load_der_x509_certificate(base64.b64decode(data["certificateData"]))


def test_csr_is_signed_with_mldsa(tmp_path: Path) -> None:
    run_cli("keygen", "--private-key", tmp_path / "k.pem", "--algorithm", "ml-dsa-87")
    result = run_cli("csr", "--private-key", tmp_path / "k.pem", "--subject", "CN=pq-device")
    assert result.returncode == 0, result.stderr
    request = x509.load_pem_x509_csr(result.stdout.encode())
    assert request.is_signature_valid
    assert request.signature_algorithm_oid == x509.SignatureAlgorithmOID.ML_DSA_87


@pytest.mark.parametrize(
    "where", [["pkcs11:token=t;object=o"], ["handle:0x81000010"], ["x.tss2", "--tpm"]]
)
def test_hardware_cannot_make_mldsa_keys(where: list[str]) -> None:
    result = run_cli("keygen", "--private-key", *where, "--algorithm", "ml-dsa-65")
    assert_one_line_error(result, "ml-dsa-65", "have no ML-DSA")


def test_an_mldsa_certificate_with_another_key_says_why_in_one_line(
    pki: DevPki, tmp_path: Path
) -> None:
    cert_path, _ = leaf_files(tmp_path, "ml-dsa-65", pki.issuing)
    _, ec_key = leaf_files(tmp_path, "ec-p256", pki.issuing)
    result = run_cli(
        "credential-process", "--certificate", cert_path, "--private-key", ec_key, *ARN_FLAGS,
        "--endpoint", "http://127.0.0.1:9",
    )  # fmt: skip
    assert_one_line_error(result, "ML-DSA", "SoftHSM 2.6 and TPM 2.0 have no ML-DSA")


@pytest.mark.parametrize("issuer", ["ec", "mldsa"])
def test_credential_process_gets_credentials_for_an_mldsa_65_leaf(
    pki: DevPki,
    tmp_path: Path,
    emulator_both: RunningEmulator,
    mldsa_root: tuple[Path, x509.Certificate, object],
    issuer: str,
) -> None:
    ca = pki.issuing if issuer == "ec" else mldsa_root[1:]
    cert_path, key_path = leaf_files(tmp_path, "ml-dsa-65", ca)  # type: ignore[arg-type]
    chain = ["--intermediates", pki.issuing_cert] if issuer == "ec" else []
    result = run_cli(
        "credential-process", "--certificate", cert_path, "--private-key", key_path,
        *chain, *ARN_FLAGS, "--endpoint", emulator_both.url,
    )  # fmt: skip
    process_credentials(result)


def test_an_ec_leaf_under_an_mldsa_ca_gets_credentials(
    tmp_path: Path,
    emulator_both: RunningEmulator,
    mldsa_root: tuple[Path, x509.Certificate, object],
) -> None:
    cert_path, key_path = leaf_files(tmp_path, "ec-p256", mldsa_root[1:])  # type: ignore[arg-type]
    result = run_cli(
        "credential-process", "--certificate", cert_path, "--private-key", key_path,
        *ARN_FLAGS, "--endpoint", emulator_both.url,
    )  # fmt: skip
    process_credentials(result)


def signed_request(pki: DevPki, url: str) -> tuple[sigv4x509.Request, mldsa.MLDSA65PrivateKey]:
    key = mldsa.MLDSA65PrivateKey.generate()
    leaf = pki.issue(key.public_key(), "tampered")  # type: ignore[arg-type]
    query = f"profileArn={PROFILE_ARN}&roleArn={ROLE_ARN}&trustAnchorArn={TRUST_ANCHOR_ARN}"
    request = sigv4x509.Request(
        "POST", f"{url}/sessions?{query}", (("Content-Type", "application/json"),),
        b'{"durationSeconds":900}',
    )  # fmt: skip
    identity = Identity(leaf, (pki.issuing[0],))
    signed = sigv4x509.sign(
        request, identity.signer(FileKey(key)), "us-east-1", datetime.now(timezone.utc)
    )
    return signed.request, key


def send(request: sigv4x509.Request) -> int:
    headers = {name: value for name, value in request.headers if name != "Host"}
    sent = urllib.request.Request(request.url, request.body, headers, method="POST")
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("change", ["none", "body", "signature"])
def test_an_mldsa_request_with_one_byte_changed_is_refused(
    pki: DevPki, emulator_both: RunningEmulator, change: str
) -> None:
    request, _ = signed_request(pki, emulator_both.url)
    if change == "body":
        request = sigv4x509.Request(
            request.method, request.url, request.headers, b'{"durationSeconds":901}'
        )
    elif change == "signature":
        headers = dict(request.headers)
        auth = headers["Authorization"]
        flipped = "0" if auth[-1] != "0" else "1"
        headers["Authorization"] = auth[:-1] + flipped
        request = sigv4x509.Request(
            request.method, request.url, tuple(headers.items()), request.body
        )
    assert send(request) == (201 if change == "none" else 403)


def test_an_ec_key_may_not_claim_the_mldsa_algorithm(
    pki: DevPki, emulator_both: RunningEmulator
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = pki.issue(key.public_key(), "liar")

    class Liar:
        algorithm = "AWS4-X509-MLDSA"
        serial = leaf.serial_number
        certificate_headers = Identity(leaf, (pki.issuing[0],)).headers

        def sign(self, message: bytes) -> bytes:
            return FileKey(key).sign(message)

    query = f"profileArn={PROFILE_ARN}&roleArn={ROLE_ARN}&trustAnchorArn={TRUST_ANCHOR_ARN}"
    request = sigv4x509.Request("POST", f"{emulator_both.url}/sessions?{query}", (), b"{}")
    signed = sigv4x509.sign(request, Liar(), "us-east-1", datetime.now(timezone.utc))
    assert send(signed.request) == 403
