"""A TPM that goes away and comes back: swtpm killed, then restarted on the same state and ports.

A key keeps signing after the restart (the connection, the primary, the key and its password
session are made again, once, without asking for the password); while the TPM stays down each
signature is one clear ``KeySourceError``; and ``hwsigner serve`` over a TPM key gets new
credentials after the restart, having failed to refresh while it was down.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from hwsigner.devpki import DevPki
from hwsigner.errors import KeySourceError
from hwsigner.keys import KeyOptions, PublicKey, open_key
from tests.conftest import RunningEmulator
from tests.delivery import expire_in, reset
from tests.helpers import ARN_FLAGS
from tests.swtpm import Swtpm, needs_swtpm, needs_tpm2_openssl

pytestmark = [pytest.mark.tpm, needs_swtpm]
tpm = pytest.importorskip("hwsigner.keys.tpm")


def verify(public_key: PublicKey, signature: bytes, message: bytes) -> None:
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))


@needs_tpm2_openssl
def test_a_key_file_with_a_password_signs_again_after_a_restart(
    swtpm: Swtpm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = swtpm.openssl_key(tmp_path / "pw.tss2", "ec-p256", password="pw 1")
    monkeypatch.setenv("HWSIGNER_TPM_KEY_PASSWORD", "pw 1")
    with open_key(str(path), KeyOptions(tpm_tcti=swtpm.tcti)) as key:
        verify(key.public_key, key.sign(b"before"), b"before")
        monkeypatch.delenv("HWSIGNER_TPM_KEY_PASSWORD")  # the key already has it
        swtpm.restart()
        verify(key.public_key, key.sign(b"after"), b"after")
        verify(key.public_key, key.sign(b"again"), b"again")
        counters = key.counters  # type: ignore[attr-defined]
    assert counters.reconnects == 1
    assert (counters.primaries_created, counters.keys_loaded, counters.sessions_started) == (
        2,
        2,
        2,
    )
    assert swtpm.transient_handles() == []  # what was loaded again is flushed too
    assert swtpm.loaded_sessions() == []


def test_a_persistent_key_signs_again_after_a_failure_while_down(
    swtpm: Swtpm, tmp_path: Path
) -> None:
    swtpm.persistent_key(0x81000020, tmp_path)
    options = KeyOptions(tpm_tcti=swtpm.tcti, no_tpm_key_password=True)
    with open_key("handle:0x81000020", options) as key:
        swtpm.kill()
        with pytest.raises(KeySourceError, match="cannot reconnect"):
            key.sign(b"while down")  # this left ESAPI saying "function called in the wrong order"
        swtpm.restart()
        verify(key.public_key, key.sign(b"after"), b"after")
        assert key.counters.reconnects == 1  # type: ignore[attr-defined]


@needs_tpm2_openssl
def test_a_tpm_that_stays_down_is_one_clear_error_then_recovers(
    swtpm: Swtpm, tmp_path: Path
) -> None:
    path = swtpm.openssl_key(tmp_path / "k.tss2", "ec-p256")
    with open_key(str(path), KeyOptions(tpm_tcti=swtpm.tcti)) as key:
        swtpm.kill()
        for _ in range(2):  # the next signature tries to reconnect again
            with pytest.raises(KeySourceError) as caught:
                key.sign(b"m")
            assert str(caught.value).startswith(
                f"lost the connection to the TPM ({swtpm.tcti}) and cannot reconnect"
            )
            assert "\n" not in str(caught.value)
            assert "is running" in str(caught.value.hint)
            assert type(caught.value) is KeySourceError  # not a lost connection to retry again
        swtpm.restart()
        verify(key.public_key, key.sign(b"back"), b"back")
    assert swtpm.transient_handles() == []


@needs_tpm2_openssl
def test_keys_sharing_a_connection_reconnect_it_once(swtpm: Swtpm, tmp_path: Path) -> None:
    options = KeyOptions(tpm_tcti=swtpm.tcti)
    paths = [swtpm.openssl_key(tmp_path / f"{n}.tss2", "ec-p256") for n in range(2)]
    first = open_key(str(paths[0]), options)
    swtpm.restart()
    second = open_key(str(paths[1]), options)  # on the same connection, broken under the first
    with first, second:
        assert second.counters is first.counters  # type: ignore[attr-defined]
        for key in (first, second, first):
            verify(key.public_key, key.sign(b"m"), b"m")
        assert first.counters.reconnects == 1  # type: ignore[attr-defined]
        assert first.counters.primaries_created == 2  # type: ignore[attr-defined]
    assert swtpm.transient_handles() == []


@needs_tpm2_openssl
def test_serve_gets_new_credentials_after_a_restart(
    swtpm: Swtpm, own_emulator: RunningEmulator, pki: DevPki, tmp_path: Path
) -> None:
    from tests.test_serve import Server

    key = swtpm.openssl_key(tmp_path / "serve.tss2", "ec-p256")
    cert = pki.issue_file(swtpm.openssl_public_key(key), "tpm-serve", tmp_path / "serve.pem")
    reset(own_emulator.url)
    expire_in(own_emulator.url, 8)  # serve refreshes when 4 seconds remain
    running = Server([
        "--certificate", str(cert), "--private-key", str(key),
        "--intermediates", str(pki.issuing_cert), "--tpm-tcti", swtpm.tcti,
        "--no-tpm-key-password", "--endpoint", own_emulator.url, *ARN_FLAGS,
    ])  # fmt: skip
    try:
        token = running.token()
        status, body = running.credentials(token)
        assert status == 200, body
        first = json.loads(body)["AccessKeyId"]
        swtpm.kill()  # down while serve refreshes: this used to leave ESAPI "in the wrong order"
        deadline = time.monotonic() + 60
        while not any("refreshing credentials failed" in line for line in running.errors):
            assert time.monotonic() < deadline, f"no refresh: {''.join(running.errors)}"
            running.credentials(token)  # a request near the expiry makes serve refresh
            time.sleep(0.2)
        swtpm.restart()
        while True:
            status, body = running.credentials(token)
            if status == 200 and json.loads(body)["AccessKeyId"] != first:
                break
            assert time.monotonic() < deadline, f"no new credentials: {''.join(running.errors)}"
            time.sleep(0.2)
    finally:
        code, output = running.stop()
        expire_in(own_emulator.url, None)
    assert code == 0
    assert "wrong order" not in output and "Traceback" not in output
    assert "lost the connection to the TPM" in output
    assert swtpm.transient_handles() == []
