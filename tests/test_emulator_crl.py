"""``hwsigner emulator --crl``: revoked certificates are refused as the service refuses them.

A CRL applies to what its issuer issued, whatever trust anchor the chain ends at; a list that
does not verify with the issuer's key revokes nothing.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hwsigner.devpki import DevPki, make_crl, new_key

from .conftest import RunningEmulator, start_emulator, stop
from .delivery import session_flags
from .helpers import REPO, assert_one_line_error, process_credentials, run_cli


def certificate(flags: list[str]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(
        Path(flags[flags.index("--certificate") + 1]).read_bytes()
    )


def write_crl(path: Path, crl: x509.CertificateRevocationList, der: bool = False) -> Path:
    encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
    path.write_bytes(crl.public_bytes(encoding))
    return path


@pytest.fixture(scope="module")
def devices(pki: DevPki) -> dict[str, list[str]]:
    """Leaves of the issuing CA: two revoked (one per CRL form), one forged-revoked, one kept."""
    return {
        name: session_flags(pki, f"crl-{name}", "ENDPOINT") for name in ("pem", "der", "x", "ok")
    }


@pytest.fixture(scope="module")
def revoking_emulator(
    pki: DevPki, devices: dict[str, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningEmulator]:
    directory = tmp_path_factory.mktemp("crl")
    pem = write_crl(directory / "a.crl", pki.revoke([certificate(devices["pem"])]))
    der = write_crl(directory / "b.crl", pki.revoke([certificate(devices["der"])]), der=True)
    # a CRL under the issuing CA's name, signed by another key: it must revoke nothing
    impostor = (pki.issuing[0], new_key("ec-p256"))
    forged = make_crl([certificate(devices["x"]).serial_number], impostor)  # type: ignore[arg-type]
    fake = write_crl(directory / "forged.crl", forged)
    running = start_emulator(
        pki.root_cert, extra=("--crl", str(pem), "--crl", str(der), "--crl", str(fake))
    )
    yield running
    stop(running.process)


def credential_process(flags: list[str], url: str) -> subprocess.CompletedProcess[str]:
    return run_cli("credential-process", *[url if f == "ENDPOINT" else f for f in flags])


@pytest.mark.parametrize("form", ["pem", "der"])
def test_revoked_certificate_is_refused_like_the_service(
    revoking_emulator: RunningEmulator, devices: dict[str, list[str]], form: str
) -> None:
    result = credential_process(devices[form], revoking_emulator.url)
    assert_one_line_error(result, "AccessDeniedException", "Certificate revoked")


def test_other_certificates_of_the_same_issuer_still_work(
    revoking_emulator: RunningEmulator, devices: dict[str, list[str]]
) -> None:
    process_credentials(credential_process(devices["ok"], revoking_emulator.url))


def test_a_crl_that_its_issuer_did_not_sign_revokes_nothing(
    revoking_emulator: RunningEmulator, devices: dict[str, list[str]]
) -> None:
    process_credentials(credential_process(devices["x"], revoking_emulator.url))


def test_a_root_crl_revokes_the_intermediate_and_all_below_it(pki: DevPki, tmp_path: Path) -> None:
    crl = write_crl(tmp_path / "root.crl", pki.revoke([pki.issuing[0]], by_root=True))
    running = start_emulator(pki.root_cert, extra=("--crl", str(crl)))
    try:
        flags = session_flags(pki, "crl-below-revoked-ca", running.url)
        assert_one_line_error(run_cli("credential-process", *flags), "Certificate revoked")
    finally:
        stop(running.process)


def test_an_unreadable_crl_stops_the_emulator_with_one_line(pki: DevPki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.crl"
    junk.write_bytes(b"not a CRL")
    result = run_cli("emulator", "--port", "0", "--trust-anchor", pki.root_cert, "--crl", junk)
    assert_one_line_error(result, "junk.crl", "CRL")


def test_devpki_script_writes_a_crl_the_emulator_applies(pki: DevPki, tmp_path: Path) -> None:
    flags = session_flags(pki, "crl-script", "ENDPOINT")
    cert = flags[flags.index("--certificate") + 1]
    out = tmp_path / "script.crl"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "devpki.py"), "revoke", str(pki.directory), cert,
         "--out", str(out), "--der"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    revoked = x509.load_der_x509_crl(out.read_bytes())
    assert revoked.get_revoked_certificate_by_serial_number(certificate(flags).serial_number)
    running = start_emulator(pki.root_cert, extra=("--crl", str(out)))
    try:
        result = credential_process(flags, running.url)
        assert_one_line_error(result, "Certificate revoked")
    finally:
        stop(running.process)


def test_in_process_emulator_applies_revocations(pki: DevPki) -> None:
    """The library form: ``running(..., revocations=...)`` refuses what the CRL lists."""
    from hwsigner.emulator import Revocations, TrustAnchors, running
    from hwsigner.errors import ServiceError
    from hwsigner.identity import Identity
    from hwsigner.keys.file import FileKey
    from hwsigner.rolesanywhere import request_credentials
    from hwsigner.settings import Settings

    from .helpers import PROFILE_ARN, ROLE_ARN, TRUST_ANCHOR_ARN

    key = new_key("ec-p256")
    revoked = pki.issue(key.public_key(), "crl-in-process")
    kept = pki.issue(key.public_key(), "crl-in-process-renewed")
    revocations = Revocations((pki.revoke([revoked]),))
    with running(TrustAnchors((pki.root[0],)), revocations=revocations) as server:
        params = Settings(
            trust_anchor_arn=TRUST_ANCHOR_ARN,
            profile_arn=PROFILE_ARN,
            role_arn=ROLE_ARN,
            endpoint=server.url,
        )
        chain = (pki.issuing[0],)
        request_credentials(params, Identity(kept, chain), FileKey(key))
        with pytest.raises(ServiceError, match="Certificate revoked"):
            request_credentials(params, Identity(revoked, chain), FileKey(key))
