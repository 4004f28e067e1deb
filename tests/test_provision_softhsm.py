# ruff: noqa: F811 - pytest fixtures imported from tests.softhsm are redefined as arguments
"""The factory flow on SoftHSM: keygen -> csr -> the dev CA -> import-cert -> credential-process.

Every step runs ``hwsigner`` as a subprocess; OpenSC's ``pkcs11-tool`` and ``openssl`` look at the
token and the request from outside, and the emulator checks the signature and chain over HTTP.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hwsigner.devpki import DevPki

from .conftest import RunningEmulator
from .helpers import ARN_FLAGS, REPO, assert_one_line_error, process_credentials, run_cli
from .softhsm import MODULE, SoftHsm, SoftToken, softhsm  # noqa: F401 (a fixture)

pytestmark = pytest.mark.softhsm
pytest.importorskip("pkcs11")


def hwsigner(command: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_cli(command, "--pkcs11-lib", MODULE, *args)


def spki(public_key: object) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


def objects(token: SoftToken) -> str:
    """What pkcs11-tool lists on the token (logged in, so private keys too)."""
    return token.tool("--list-objects").decode()


def private_key_access(token: SoftToken, label: str) -> str:
    listing = objects(token)
    block = re.search(rf"Private Key Object;[^\n]*\n  label:\s+{label}\n(?:  .*\n)*", listing)
    assert block, listing
    access = re.search(r"Access:\s+(.*)", block.group(0))
    assert access, block.group(0)
    return access.group(1)


def token_public_key(token: SoftToken, label: str) -> bytes:
    """The public key object's SubjectPublicKeyInfo, as pkcs11-tool reads it."""
    try:
        der = token.tool("--read-object", "--type", "pubkey", "--label", label, login=False)
        return spki(serialization.load_der_public_key(der))
    except RuntimeError as exc:  # OpenSC 0.2x cannot export P-384 keys ("cannot create EVP_PKEY")
        if "EVP_PKEY" not in str(exc):
            raise
    listing = token.tool("--list-objects", "--type", "pubkey", login=False).decode()
    point = re.search(
        rf"EC_POINT:\s+([0-9a-f]+)\n  EC_PARAMS:\s+06052b81040022\n  label:\s+{label}\n", listing
    )
    assert point, listing
    raw = bytes.fromhex(point.group(1))[2:]  # a DER OCTET STRING: tag 04, length, the point
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), raw)
    return spki(key)


def keygen(token: SoftToken, label: str, *extra: str) -> tuple[object, str]:
    """``hwsigner keygen`` on the token: the printed public key and reference."""
    result = hwsigner("keygen", "--private-key", token.uri(object=label, pin=True), *extra)
    assert result.returncode == 0, result.stderr
    body, _, reference = result.stdout.rstrip("\n").rpartition("\n")
    return serialization.load_pem_public_key(body.encode()), reference


def csr(tmp_path: Path, reference: str, token: SoftToken, cn: str) -> Path:
    result = hwsigner(
        "csr", "--private-key", f"{reference}?pin-value={token.pin}",
        "--subject", f"CN={cn},O=Acme", "--san", f"dns:{cn}.example.com",
        "--out", tmp_path / f"{cn}.csr",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return tmp_path / f"{cn}.csr"


def issue(pki: DevPki, request: Path, cn: str) -> Path:
    """The dev CA's ``issue``, which takes a CSR (and checks its signature)."""
    out = request.with_suffix(".pem")
    done = subprocess.run(
        [sys.executable, REPO / "scripts" / "devpki.py", "issue", pki.directory, request, cn,
         "--out", out],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize("algorithm", ["ec-p256", "ec-p384", "rsa-2048"])
def test_keygen_makes_a_key_that_never_leaves_the_token(softhsm: SoftHsm, algorithm: str) -> None:
    token = softhsm.token()
    public_key, reference = keygen(token, "device", "--algorithm", algorithm)
    assert reference == f"pkcs11:token={token.label};id=%01;object=device"
    access = private_key_access(token, "device")
    assert {"sensitive", "always sensitive", "never extractable", "local"} <= {
        part.strip() for part in access.split(",")
    }
    assert "Private Key Object" not in token.tool("--list-objects", login=False).decode()
    assert token_public_key(token, "device") == spki(public_key)


def test_keygen_chooses_the_next_free_id_and_keeps_a_pin_source(
    softhsm: SoftHsm, tmp_path: Path
) -> None:
    token = softhsm.token()
    keygen(token, "first")
    pin_file = tmp_path / "pin"
    pin_file.write_text(token.pin + "\n")
    uri = f"pkcs11:token={token.label};object=second?pin-source=file:{pin_file}"
    result = hwsigner("keygen", "--private-key", uri)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        f"pkcs11:token={token.label};id=%02;object=second?pin-source=file:{pin_file}"
    )


def test_csr_is_signed_on_the_token_and_carries_its_key(softhsm: SoftHsm, tmp_path: Path) -> None:
    token = softhsm.token()
    public_key, reference = keygen(token, "device")
    request = csr(tmp_path, reference, token, "device-0001")
    done = subprocess.run(
        ["openssl", "req", "-in", request, "-verify", "-noout"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and "verify OK" in done.stdout + done.stderr
    parsed = x509.load_pem_x509_csr(request.read_bytes())
    assert spki(parsed.public_key()) == spki(public_key)


def test_factory_flow_then_credential_process_from_the_uri_alone(
    softhsm: SoftHsm, pki: DevPki, emulator: RunningEmulator, tmp_path: Path
) -> None:
    token = softhsm.token()
    _, reference = keygen(token, "device")
    cert_path = issue(pki, csr(tmp_path, reference, token, "device-0002"), "device-0002")
    uri = token.uri(object="device", pin=True)
    installed = hwsigner(
        "import-cert", "--certificate", cert_path, "--chain", pki.issuing_cert, "--private-key", uri
    )
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.strip() == reference
    listing = token.tool("--list-objects", "--type", "cert", login=False).decode()
    assert "label:      device\n" in listing and "ID:         01" in listing
    assert "hwsigner dev issuing CA" in listing  # the chain, beside the leaf
    result = run_cli(
        "credential-process", "--certificate", uri, "--pkcs11-lib", MODULE,
        *ARN_FLAGS, "--endpoint", emulator.url,
    )  # fmt: skip
    assert str(process_credentials(result)["AccessKeyId"]).startswith("ASIA")
    doctor = hwsigner(
        "doctor", "--certificate", uri, "--trust-anchor-cert", pki.root_cert,
        *ARN_FLAGS, "--endpoint", emulator.url, "--online",
    )  # fmt: skip
    assert doctor.returncode == 0, doctor.stdout
    assert "FAIL" not in doctor.stdout and "PASS  CreateSession" in doctor.stdout


def test_import_cert_for_another_key_changes_nothing(
    softhsm: SoftHsm, pki: DevPki, tmp_path: Path
) -> None:
    token = softhsm.token()
    keygen(token, "device")
    before = objects(token)
    other, _ = pki.new_leaf("ec-p256", "someone-else")
    result = hwsigner(
        "import-cert", "--certificate", other, "--chain", pki.issuing_cert,
        "--private-key", token.uri(object="device", pin=True),
    )  # fmt: skip
    assert_one_line_error(result, "is not the key's", "nothing was changed")
    assert objects(token) == before


def test_keygen_onto_an_existing_label_or_id_changes_nothing(softhsm: SoftHsm) -> None:
    token = softhsm.token()
    keygen(token, "device")
    before = objects(token)
    again = hwsigner("keygen", "--private-key", token.uri(object="device", pin=True))
    assert_one_line_error(again, "already has a", "labelled 'device'", "nothing was changed")
    same_id = hwsigner("keygen", "--private-key", token.uri(object="new", id="%01", pin=True))
    assert_one_line_error(same_id, "with id 01", "nothing was changed")
    assert objects(token) == before


def certificates(token: SoftToken) -> set[tuple[str, str, str]]:
    """(subject, CKA_ID in hex, CKA_LABEL) of every certificate object, read with python-pkcs11."""
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    found = set()
    with pkcs11.lib(MODULE).get_token(token_label=token.label).open() as session:
        for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}):
            cert = x509.load_der_x509_certificate(obj[Attribute.VALUE])
            found.add(
                (
                    cert.subject.rfc4514_string(),
                    bytes(obj[Attribute.ID]).hex(),
                    obj[Attribute.LABEL],
                )
            )
    return found


def write_undeletable(token: SoftToken, cert_file: Path, id_: bytes, label: str) -> None:
    """A certificate object the token refuses to destroy (CKA_DESTROYABLE false)."""
    import pkcs11
    from pkcs11 import Attribute, CertificateType, ObjectClass

    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    with (
        pkcs11.lib(MODULE)
        .get_token(token_label=token.label)
        .open(rw=True, user_pin=token.pin) as session
    ):
        session.create_object({
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.DESTROYABLE: False,
            Attribute.ID: id_,
            Attribute.LABEL: label,
            Attribute.SUBJECT: cert.subject.public_bytes(),
            Attribute.VALUE: cert.public_bytes(Encoding.DER),
        })  # fmt: skip


def test_renewal_needs_replace_and_swaps_the_certificate(
    softhsm: SoftHsm, pki: DevPki, emulator: RunningEmulator, tmp_path: Path
) -> None:
    token = softhsm.token()
    public_key, _ = keygen(token, "device")
    uri = token.uri(object="device", pin=True)
    first = pki.issue_file(public_key, "renew-1", tmp_path / "first.pem")  # type: ignore[arg-type]
    second = pki.issue_file(public_key, "renew-2", tmp_path / "second.pem")  # type: ignore[arg-type]
    assert hwsigner("import-cert", "--certificate", first, "--private-key", uri).returncode == 0
    assert certificates(token) == {("CN=renew-1,O=hwsigner dev", "01", "device")}
    before = objects(token)
    refused = hwsigner("import-cert", "--certificate", second, "--private-key", uri)
    assert_one_line_error(refused, "already has a certificate", "--replace", "nothing was changed")
    assert objects(token) == before
    replaced = hwsigner(
        "import-cert", "--certificate", second, "--chain", pki.issuing_cert,
        "--private-key", uri, "--replace",
    )  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert ("CN=renew-2,O=hwsigner dev", "01", "device") in certificates(token)
    assert not [cert for cert in certificates(token) if "renew-1" in cert[0]]  # the old one: gone
    result = run_cli(
        "credential-process", "--certificate", uri, "--pkcs11-lib", MODULE,
        *ARN_FLAGS, "--endpoint", emulator.url,
    )  # fmt: skip
    process_credentials(result)


def test_renewal_writes_the_new_certificate_before_deleting_the_old(
    softhsm: SoftHsm, pki: DevPki, tmp_path: Path
) -> None:
    """When deleting the old certificate fails, the old one is still there and so is the new."""
    token = softhsm.token()
    public_key, _ = keygen(token, "device")
    old = pki.issue_file(public_key, "old", tmp_path / "old.pem")  # type: ignore[arg-type]
    new = pki.issue_file(public_key, "new", tmp_path / "new.pem")  # type: ignore[arg-type]
    write_undeletable(token, old, b"\x01", "device")
    uri = token.uri(object="device", pin=True)
    result = hwsigner("import-cert", "--certificate", new, "--private-key", uri, "--replace")
    assert_one_line_error(result, "removing the old certificate CN=old", "new one is in place")
    assert certificates(token) == {
        ("CN=old,O=hwsigner dev", "01", "device"),
        ("CN=new,O=hwsigner dev", "01", "device"),
    }


def test_token_mistakes_are_one_line(softhsm: SoftHsm) -> None:
    token = softhsm.token()
    wrong_pin = f"pkcs11:token={token.label};object=device?pin-value=9999"
    # the same message as a wrong PIN for signing: one login path
    wrong = hwsigner("keygen", "--private-key", wrong_pin)
    assert_one_line_error(wrong, f"wrong PIN for token '{token.label}'", "not retried")
    no_label = token.uri(pin=True)
    assert_one_line_error(hwsigner("keygen", "--private-key", no_label), "no label")
    no_token = "pkcs11:token=no-such-token;object=device?pin-value=1234"
    assert_one_line_error(hwsigner("keygen", "--private-key", no_token), "no PKCS#11 token")
    assert "Private Key Object" not in objects(token)
