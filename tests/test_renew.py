"""``hwsigner renew --exec`` with a file key: OpenSSL as the CA, the emulator as the service.

Every run is the CLI as a subprocess. The bad cases (the CA command fails, prints garbage, or a
certificate for another key; the endpoint refuses the new certificate under ``--verify``) must
leave the old certificate byte for byte as it was, and write no ``.previous``.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hwsigner.devpki import DevPki

from .conftest import RunningEmulator
from .delivery import emulator_call
from .helpers import ARN_FLAGS, assert_one_line_error, process_credentials, run_cli

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
RENEWED = re.compile(r"renewed: serial (\d+), notAfter (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\n")


def openssl_x509(pki: DevPki) -> str:
    """``openssl x509 -req`` signing with the PKI's issuing CA, for $HWSIGNER_VALIDITY_DAYS."""
    ca, key = shlex.quote(str(pki.issuing_cert)), shlex.quote(str(pki.directory / "issuing-ca.key"))
    return (
        f"openssl x509 -req -CA {ca} -CAkey {key} -days ${{HWSIGNER_VALIDITY_DAYS:-30}} "
        "-copy_extensions copy 2>/dev/null"
    )


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def renew(
    cert: Path, key: Path, *extra: str | Path, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    service = [*ARN_FLAGS, "--endpoint", url] if url else []
    return run_cli("renew", "--certificate", cert, "--private-key", key, *service, *extra)


@pytest.fixture
def device(pki: DevPki, request: pytest.FixtureRequest) -> tuple[Path, Path]:
    """A fresh EC leaf of the dev PKI, its file mode set to 0640 (renew must keep it)."""
    cert, key = pki.new_leaf("ec-p256", f"renew-{request.node.name[:40]}")
    cert.chmod(0o640)
    return cert, key


def test_exec_renews_installs_and_the_endpoint_accepts_the_new_certificate(
    pki: DevPki, own_emulator: RunningEmulator, device: tuple[Path, Path]
) -> None:
    cert, key = device
    old_bytes, old = cert.read_bytes(), load(cert)
    result = renew(
        cert, key, "--exec", openssl_x509(pki), "--validity-days", "40", "--verify",
        "--intermediates", pki.issuing_cert, url=own_emulator.url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    match = RENEWED.fullmatch(result.stdout)
    assert match, result.stdout
    new = load(cert)
    assert int(match[1]) == new.serial_number != old.serial_number
    assert match[2] == new.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    expected_end = datetime.now(timezone.utc) + timedelta(days=40)
    assert abs(new.not_valid_after_utc - expected_end) < timedelta(hours=1)
    assert new.subject == old.subject
    assert new.public_key() == old.public_key()
    assert Path(f"{cert}.previous").read_bytes() == old_bytes
    assert cert.stat().st_mode & 0o777 == 0o640
    assert Path(f"{cert}.previous").stat().st_mode & 0o777 == 0o640
    assert not [p for p in cert.parent.iterdir() if p.name.startswith(f".{cert.name}")]

    flags = ["--certificate", cert, "--private-key", key, "--intermediates", pki.issuing_cert]
    process_credentials(
        run_cli("credential-process", *flags, *ARN_FLAGS, "--endpoint", own_emulator.url)
    )
    last = emulator_call(own_emulator.url, "GET", "stats")["last"]
    assert last["serialNumber"] == str(new.serial_number)


def test_validity_reaches_the_command_only_when_asked(
    pki: DevPki, device: tuple[Path, Path]
) -> None:
    cert, key = device
    result = renew(cert, key, "--exec", openssl_x509(pki))
    assert result.returncode == 0, result.stderr
    expected_end = datetime.now(timezone.utc) + timedelta(days=30)  # the command's default
    assert abs(load(cert).not_valid_after_utc - expected_end) < timedelta(hours=1)


def test_subject_flag_replaces_the_subject(pki: DevPki, device: tuple[Path, Path]) -> None:
    cert, key = device
    result = renew(cert, key, "--exec", openssl_x509(pki), "--subject", "CN=renamed,O=Acme")
    assert result.returncode == 0, result.stderr
    assert load(cert).subject.rfc4514_string() == "CN=renamed,O=Acme"


def test_not_due_changes_nothing_and_runs_no_ca(
    pki: DevPki, device: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = device
    before = cert.read_bytes()
    marker = tmp_path / "ran"
    result = renew(cert, key, "--exec", f"touch {marker}; false", "--if-expiring-within", "30")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "not due: expires in 364 days\n"
    assert result.stderr == ""
    assert cert.read_bytes() == before and not marker.exists()
    assert not Path(f"{cert}.previous").exists()


def test_due_renews(pki: DevPki, device: tuple[Path, Path]) -> None:
    cert, key = device
    result = renew(cert, key, "--exec", openssl_x509(pki), "--if-expiring-within", "365")
    assert result.returncode == 0, result.stderr
    assert RENEWED.fullmatch(result.stdout)


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A CA the emulator does not trust."""
    return DevPki.create(tmp_path_factory.mktemp("stranger"))


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("exit", ("exited with status 3", "boom", "nothing was changed")),
        ("garbage", ("no PEM certificate", "nothing was changed")),
        ("other-key", ("another key", "nothing was changed")),
        ("not-a-ca-chain", ("not a CA", "nothing was changed")),
        ("rules", ("Roles Anywhere would refuse the new certificate", "nothing was changed")),
        ("refused", ("did not get credentials", "Untrusted signing certificate", "nothing was")),
    ],
)
def test_bad_answers_leave_the_old_certificate_untouched(
    pki: DevPki,
    stranger: DevPki,
    own_emulator: RunningEmulator,
    device: tuple[Path, Path],
    case: str,
    needles: tuple[str, ...],
) -> None:
    cert, key = device
    other_cert, _ = pki.new_leaf("ec-p256", "renew-someone-else")
    commands = {
        "exit": "cat >/dev/null; echo boom >&2; exit 3",
        "garbage": "cat >/dev/null; echo 'hello, I am not a certificate'",
        "other-key": f"cat >/dev/null; cat {other_cert}",
        "not-a-ca-chain": f"{openssl_x509(pki)}; cat {other_cert}",
        "rules": openssl_x509(pki).replace("-copy_extensions copy", ""),  # no keyUsage
        "refused": openssl_x509(stranger),
    }
    before = cert.read_bytes()
    result = renew(cert, key, "--exec", commands[case], "--verify", url=own_emulator.url)
    assert_one_line_error(result, *needles)
    assert cert.read_bytes() == before
    assert not Path(f"{cert}.previous").exists()


def test_verify_needs_the_roles_anywhere_flags(pki: DevPki, device: tuple[Path, Path]) -> None:
    cert, key = device
    before = cert.read_bytes()
    result = renew(cert, key, "--exec", openssl_x509(pki), "--verify")
    assert_one_line_error(result, "--verify needs --trust-anchor-arn")
    assert cert.read_bytes() == before


def test_one_ca_source_is_required(device: tuple[Path, Path]) -> None:
    cert, key = device
    assert_one_line_error(renew(cert, key), "--exec", "--pca-arn")


def test_a_certificate_file_holding_the_key_is_refused_before_the_ca_runs(
    pki: DevPki, device: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = device
    combo = tmp_path / "combo.pem"
    combo.write_bytes(cert.read_bytes() + key.read_bytes())
    marker = tmp_path / "ran"
    result = run_cli("renew", "--certificate", combo, "--exec", f"touch {marker}")
    assert_one_line_error(result, "holds a private key")
    assert not marker.exists()


def test_a_der_certificate_file_stays_der(pki: DevPki, device: tuple[Path, Path]) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    cert, key = device
    der = cert.with_suffix(".der")
    der.write_bytes(load(cert).public_bytes(Encoding.DER))
    result = renew(der, key, "--exec", openssl_x509(pki))
    assert result.returncode == 0, result.stderr
    assert x509.load_der_x509_certificate(der.read_bytes()).public_key() == load(cert).public_key()


@pytest.mark.parametrize("days", ["7"])
def test_openssl_ca_as_the_ca(
    pki: DevPki, device: tuple[Path, Path], tmp_path: Path, days: str
) -> None:
    """``openssl ca`` with a minimal configuration: its database, serial file and policy."""
    cert, key = device
    (tmp_path / "index.txt").touch()
    (tmp_path / "serial").write_text("1000\n")
    (tmp_path / "new").mkdir()
    config = tmp_path / "ca.cnf"
    config.write_text(
        "[ca]\ndefault_ca = dev\n[dev]\n"
        f"dir = {tmp_path}\ndatabase = $dir/index.txt\nserial = $dir/serial\n"
        "new_certs_dir = $dir/new\n"
        f"certificate = {pki.issuing_cert}\nprivate_key = {pki.directory / 'issuing-ca.key'}\n"
        "default_md = sha256\npolicy = anything\ncopy_extensions = copy\n"
        "x509_extensions = leaf\nunique_subject = no\n"
        "[anything]\ncommonName = supplied\norganizationName = optional\n"
        "[leaf]\nbasicConstraints = critical,CA:FALSE\n"
        "keyUsage = critical,digitalSignature\nextendedKeyUsage = clientAuth\n"
    )
    command = (
        f"openssl ca -batch -config {config} -days $HWSIGNER_VALIDITY_DAYS -notext "
        "-in /dev/stdin -out /dev/stdout 2>/dev/null"
    )
    result = renew(cert, key, "--exec", command, "--validity-days", days)
    assert result.returncode == 0, result.stderr
    new = load(cert)
    assert new.serial_number == 0x1000
    expected_end = datetime.now(timezone.utc) + timedelta(days=int(days))
    assert abs(new.not_valid_after_utc - expected_end) < timedelta(hours=1)


def test_renew_then_revoke_the_old_certificate(pki: DevPki, device: tuple[Path, Path]) -> None:
    """The whole turn: renew, revoke CERT.previous by CRL; the new one works, the old does not."""
    from .conftest import start_emulator, stop

    cert, key = device
    assert renew(cert, key, "--exec", openssl_x509(pki)).returncode == 0
    previous = Path(f"{cert}.previous")
    crl = cert.with_suffix(".crl")
    crl.write_bytes(pki.revoke([load(previous)]).public_bytes(serialization.Encoding.PEM))
    running = start_emulator(pki.root_cert, extra=("--crl", str(crl)))
    try:
        service = [*ARN_FLAGS, "--endpoint", running.url, "--private-key", str(key)]
        chain = ["--intermediates", str(pki.issuing_cert)]
        process_credentials(run_cli("credential-process", "--certificate", cert, *chain, *service))
        old = run_cli("credential-process", "--certificate", previous, *chain, *service)
        assert_one_line_error(old, "AccessDeniedException", "Certificate revoked")
    finally:
        stop(running.process)


def test_the_command_gets_the_validity_but_never_the_device_secrets(
    pki: DevPki, device: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = device
    seen = tmp_path / "env"
    command = f"env > {seen}; {openssl_x509(pki)}"
    secrets = {"HWSIGNER_PKCS11_PIN": "pin-Zq9", "HWSIGNER_TPM_KEY_PASSWORD": "pw-Zq9"}
    result = run_cli(
        "renew", "--certificate", cert, "--private-key", key, "--exec", command,
        "--validity-days", "12", env=secrets,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = seen.read_text()
    assert "HWSIGNER_VALIDITY_DAYS=12\n" in text
    assert "Zq9" not in text


def test_alternative_names_are_kept_even_with_a_new_subject(
    pki: DevPki, device: tuple[Path, Path]
) -> None:
    from cryptography.hazmat.primitives import hashes

    cert, key = device
    old = load(cert)
    names = x509.SubjectAlternativeName(
        [x509.DNSName("device-7.example.com"), x509.UniformResourceIdentifier("urn:dev:7")]
    )
    ca_cert, ca_key = pki.issuing
    with_names = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(ca_cert.subject)
        .public_key(old.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(old.not_valid_before_utc)
        .not_valid_after(old.not_valid_after_utc)
    )
    for extension in old.extensions:
        with_names = with_names.add_extension(extension.value, extension.critical)
    with_names = with_names.add_extension(names, critical=False)
    cert.write_bytes(
        with_names.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    )
    result = renew(cert, key, "--exec", openssl_x509(pki), "--subject", "CN=device-7")
    assert result.returncode == 0, result.stderr
    new = load(cert)
    assert new.subject.rfc4514_string() == "CN=device-7"
    assert new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == names


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--validity-days", "0"], "--validity-days 0 must be 1 or more"),
        (["--if-expiring-within", "-1"], "--if-expiring-within -1 must be 0 or more"),
        (["--pca-template-arn", "arn:aws:acm-pca:::template/X"], "goes with --pca-arn"),
        (["--trust-anchor-arn", "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/t"],
         "all of --trust-anchor-arn"),
        (["--subject", "O=no common name"], "has no CN"),
    ],
)  # fmt: skip
def test_flag_mistakes_are_one_line_and_change_nothing(
    pki: DevPki, device: tuple[Path, Path], flags: list[str], needle: str
) -> None:
    cert, key = device
    before = cert.read_bytes()
    assert_one_line_error(renew(cert, key, "--exec", openssl_x509(pki), *flags), needle)
    assert cert.read_bytes() == before
