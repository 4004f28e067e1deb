# ruff: noqa: F811 - pytest fixtures imported from tests.softhsm are redefined as arguments
"""Live pick-up: a renewed certificate is used by the next CreateSession of a process that is
already running (``serve``, ``update``, the Python API), without a restart and without a failed
refresh in between; a certificate not yet valid waits, one for another key is never used.

Renewals are done as users do them: a new certificate for the same key from the dev CA, written
atomically over the file (write, rename), or onto the token with ``hwsigner import-cert
--replace``. Each test has an emulator of its own whose credentials live a few seconds, so the
long-running modes refresh quickly; the emulator's ``stats`` name the serial of the last
CreateSession it granted.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    pkcs12,
)

import hwsigner
from hwsigner.devpki import DevPki, key_pem, make_leaf, new_key, pem, write_private
from hwsigner.keys import PublicKey

from .conftest import RunningEmulator
from .delivery import create_sessions, emulator_call, expire_in, private_emulator
from .helpers import ARN_FLAGS, process_credentials, run_cli
from .softhsm import MODULE, SoftHsm, softhsm  # noqa: F401 (a fixture)
from .swtpm import Swtpm, needs_swtpm, needs_tpm2_openssl
from .test_renew import RENEWED, openssl_x509
from .test_serve import Server
from .test_update import Updater, key_in_file

FAILED = "refreshing credentials failed"
SWITCHED = "certificate renewed: now signing with"


@pytest.fixture
def emulator(pki: DevPki) -> Iterator[RunningEmulator]:
    """An emulator of this test's own (its stats name the last serial it saw)."""
    with private_emulator(pki) as running:
        yield running


def stats(emulator: RunningEmulator) -> dict[str, object]:
    return emulator_call(emulator.url, "GET", "stats")  # type: ignore[no-any-return]


def last_serial(emulator: RunningEmulator) -> int:
    last = stats(emulator)["last"]
    assert isinstance(last, dict)
    return int(last["serialNumber"])


def renew(
    pki: DevPki, public_key: PublicKey, path: Path, name: str, *, valid_in: float = 0
) -> x509.Certificate:
    """A new certificate for the same key, written over ``path`` atomically (write, rename).
    ``valid_in``: seconds from now until it becomes valid."""
    start = datetime.now(timezone.utc) + timedelta(minutes=5, seconds=valid_in)
    cert = make_leaf(public_key, name, pki.issuing, now=start)  # notBefore: start - 5 minutes
    temporary = path.with_name(path.name + ".new")
    temporary.write_bytes(pem(cert))
    os.replace(temporary, path)
    return cert


def file_leaf(pki: DevPki, directory: Path, name: str) -> tuple[PublicKey, Path, list[str]]:
    """A software key's public half, its certificate file, and the flags that use them."""
    key = new_key("ec-p256")
    cert = directory / f"{name}.pem"
    cert.write_bytes(pem(pki.issue(key.public_key(), name)))
    key_path = directory / f"{name}.key"
    write_private(key_path, key_pem(key))
    flags = ["--certificate", str(cert), "--private-key", str(key_path),
             "--intermediates", str(pki.issuing_cert)]  # fmt: skip
    return key.public_key(), cert, flags


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def serve_until_new_session(running: Server, emulator: RunningEmulator, before: int) -> int:
    """Ask ``serve`` for credentials until it has made one more CreateSession; its serial.
    Each answer is complete before the next request, so no refresh is in flight meanwhile."""
    token = running.token()
    while create_sessions(emulator.url) == before:
        status, body = running.credentials(token)
        assert status == 200, body
        time.sleep(0.2)
    assert create_sessions(emulator.url) == before + 1
    return last_serial(emulator)


def serials(emulator: RunningEmulator) -> list[int]:
    """The serial of every CreateSession the emulator saw, oldest first; each was granted."""
    seen = emulator_call(emulator.url, "GET", "sessions")
    assert all(entry["decision"] == "allowed" for entry in seen), seen
    return [int(entry["serialNumber"]) for entry in seen]


def assert_no_failure(emulator: RunningEmulator, output: str) -> None:
    counts = stats(emulator)
    assert counts["rejected"] == 0 and counts["failedOnPurpose"] == 0, counts
    serials(emulator)  # every one granted
    assert FAILED not in output and "Traceback" not in output, output


# Every long-running mode, with every kind of key


@dataclass
class Device:
    """A key and its certificate as the settings name them, and how this device is renewed."""

    settings: dict[str, str]
    renew: Callable[[str], x509.Certificate]  # common name -> the installed certificate

    @property
    def flags(self) -> list[str]:
        pairs = [(f"--{name.replace('_', '-')}", value) for name, value in self.settings.items()]
        return [item for pair in pairs for item in pair]


@pytest.fixture(params=["file", "softhsm", "swtpm"])
def device(request: pytest.FixtureRequest, pki: DevPki, tmp_path: Path) -> Iterator[Device]:
    """A file key, a SoftHSM key (certificate on the token) or a swtpm key (certificate file)."""
    kind = request.param
    if kind == "file":
        public_key, cert_path, _ = file_leaf(pki, tmp_path, "device")
        settings = {"private_key": str(tmp_path / "device.key")}
        yield file_device(pki, public_key, cert_path, settings)
    elif kind == "softhsm":
        request.applymarker(pytest.mark.softhsm)
        pytest.importorskip("pkcs11")
        yield token_device(request.getfixturevalue("softhsm"), pki, tmp_path)
    else:
        request.applymarker(pytest.mark.tpm)
        if needs_swtpm.args[0] or needs_tpm2_openssl.args[0]:  # their skip conditions
            pytest.skip("needs swtpm, tpm2-tools, tpm2-pytss and the tpm2-openssl provider")
        pytest.importorskip("hwsigner.keys.tpm")
        with Swtpm.running(tmp_path / "tpm") as tpm:
            key_file = tpm.openssl_key(tmp_path / "device.tss2", "ec-p256")
            public_key = tpm.openssl_public_key(key_file)
            cert_path = pki.issue_file(public_key, "device", tmp_path / "device.pem")
            settings = {"private_key": str(key_file), "tpm_tcti": tpm.tcti}
            yield file_device(pki, public_key, cert_path, settings)


def file_device(
    pki: DevPki, public_key: PublicKey, cert_path: Path, settings: dict[str, str]
) -> Device:
    return Device(
        {"certificate": str(cert_path), **settings, "intermediates": str(pki.issuing_cert)},
        lambda name: renew(pki, public_key, cert_path, name),
    )


def token_device(softhsm: SoftHsm, pki: DevPki, directory: Path) -> Device:
    """A key on a token, its certificate beside it, renewed with ``import-cert --replace``."""
    token = softhsm.token()
    public_key = token.keygen("ec-p256", "01", "device")
    token.write_cert(pki.issue(public_key, "device"), "01", "device")
    token.write_cert(pki.issuing[0], "10", "issuing-ca")  # the chain comes from the token
    uri = token.uri(object="device", pin=True)

    def renew_on_token(name: str) -> x509.Certificate:
        renewed = pki.issue(public_key, name)
        (directory / f"{name}.pem").write_bytes(pem(renewed))
        installed = run_cli("import-cert", "--certificate", directory / f"{name}.pem",
                            "--private-key", uri, "--pkcs11-lib", MODULE, "--replace")  # fmt: skip
        assert installed.returncode == 0, installed.stderr
        return renewed

    return Device({"certificate": uri, "pkcs11_lib": MODULE}, renew_on_token)


class Running:
    """A long-running mode over a device: ``settle`` waits until no refresh is under way,
    ``next_session`` until one more CreateSession was made; ``stop`` returns what it logged."""

    def settle(self) -> None:
        pass

    def next_session(self) -> None:
        raise NotImplementedError

    def stop(self) -> str:
        raise NotImplementedError


class Serving(Running):
    def __init__(self, device: Device, emulator: RunningEmulator) -> None:
        self.emulator = emulator
        self.server = Server([*device.flags, *ARN_FLAGS, "--endpoint", emulator.url])

    def next_session(self) -> None:
        # each answer is complete before the next request: no refresh is in flight meanwhile
        serve_until_new_session(self.server, self.emulator, create_sessions(self.emulator.url))

    def stop(self) -> str:
        code, output = self.server.stop()
        assert code == 0, output
        return output


class Updating(Running):
    def __init__(self, device: Device, emulator: RunningEmulator, path: Path) -> None:
        self.emulator, self.path = emulator, path
        self.updater = Updater([*device.flags, *ARN_FLAGS, "--endpoint", emulator.url], path)
        wait_for(lambda: self.written() is not None or self.updater.process.poll() is not None,
                 "update wrote the credentials")  # fmt: skip
        assert self.written() is not None, self.updater.lines

    def written(self) -> str | None:
        return key_in_file(self.path)

    def settle(self) -> None:
        """Wait for a refresh to complete: the next one is seconds away."""
        written = self.written()
        wait_for(lambda: self.written() != written, "update refreshed")

    def next_session(self) -> None:
        before = create_sessions(self.emulator.url)
        wait_for(lambda: create_sessions(self.emulator.url) > before, "update refreshed again")

    def stop(self) -> str:
        code, output = self.updater.stop()
        assert code == 0, output
        return output


class Api(Running):
    """``hwsigner.boto3_session`` in this process; botocore asks the keeper, which refreshes."""

    def __init__(self, device: Device, emulator: RunningEmulator, caplog: Any) -> None:
        self.emulator, self.caplog = emulator, caplog
        caplog.set_level(logging.INFO, logger="hwsigner")
        self.session = hwsigner.boto3_session(  # kept: the key closes when it is collected
            **device.settings, **api_arns(), endpoint=emulator.url
        )
        self.credentials = self.session.get_credentials()

    def next_session(self) -> None:
        before = create_sessions(self.emulator.url)
        while create_sessions(self.emulator.url) == before:
            self.credentials.get_frozen_credentials()
            time.sleep(0.2)

    def stop(self) -> str:
        return str(self.caplog.text)


@pytest.mark.parametrize("mode", ["serve", "update", "api"])
def test_a_running_mode_signs_the_next_create_session_with_the_renewed_certificate(
    mode: str,
    device: Device,
    emulator: RunningEmulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    expire_in(emulator.url, 4)  # refreshed once 2 seconds remain
    running: Running
    if mode == "serve":
        running = Serving(device, emulator)
    elif mode == "update":
        running = Updating(device, emulator, tmp_path / "credentials")
    else:
        running = Api(device, emulator, caplog)
    try:
        running.settle()
        renewed = device.renew("device-renewed")
        before = len(serials(emulator))  # counted once the new certificate is in place
        running.next_session()
        seen = serials(emulator)
    finally:
        output = running.stop()
    assert renewed.serial_number != seen[0]
    assert seen[:before] == [seen[0]] * before  # until the renewal: the first certificate
    assert seen[before:] and set(seen[before:]) == {renewed.serial_number}  # then the new one
    assert_no_failure(emulator, output)
    switches = [line for line in output.splitlines() if SWITCHED in line]
    assert len(switches) == 1, output
    assert str(renewed.serial_number) in switches[0] and "CN=device-renewed" in switches[0]


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_serve_signs_with_what_hwsigner_renew_installed(
    pki: DevPki, emulator: RunningEmulator, tmp_path: Path
) -> None:
    _, cert_path, flags = file_leaf(pki, tmp_path, "renewed-by-cli")
    expire_in(emulator.url, 4)
    running = Server([*flags, *ARN_FLAGS, "--endpoint", emulator.url])
    try:
        first = last_serial(emulator)
        result = run_cli("renew", *flags, "--exec", openssl_x509(pki), "--verify",
                         *ARN_FLAGS, "--endpoint", emulator.url)  # fmt: skip
        assert result.returncode == 0, result.stderr
        installed = RENEWED.fullmatch(result.stdout)
        assert installed is not None, result.stdout
        serial = int(installed.group(1))
        assert serial != first and serials(emulator)[-1] == serial  # renew --verify's own
        before = create_sessions(emulator.url)
        assert serve_until_new_session(running, emulator, before) == serial
    finally:
        code, output = running.stop()
    assert code == 0
    previous = x509.load_pem_x509_certificate(Path(f"{cert_path}.previous").read_bytes())
    assert previous.serial_number == first
    assert_no_failure(emulator, output)
    assert sum(SWITCHED in line for line in output.splitlines()) == 1, output


def test_serve_never_uses_another_keys_certificate_nor_one_not_yet_valid(
    pki: DevPki, emulator: RunningEmulator, tmp_path: Path
) -> None:
    public_key, cert_path, flags = file_leaf(pki, tmp_path, "live-wait")
    expire_in(emulator.url, 4)
    running = Server([*flags, *ARN_FLAGS, "--endpoint", emulator.url])
    try:
        first = last_serial(emulator)
        stranger = renew(pki, new_key("ec-p256").public_key(), cert_path, "live-stranger")
        before = create_sessions(emulator.url)  # refreshes keep working with the old one
        assert serve_until_new_session(running, emulator, before) == first
        later = renew(pki, public_key, cert_path, "live-later", valid_in=3)
        before = create_sessions(emulator.url)
        assert serve_until_new_session(running, emulator, before) == first  # not valid yet
        while (serial := last_serial(emulator)) == first:
            serve_until_new_session(running, emulator, create_sessions(emulator.url))
        assert serial == later.serial_number
        assert datetime.now(timezone.utc) >= later.not_valid_before_utc
    finally:
        code, output = running.stop()
    assert code == 0
    assert_no_failure(emulator, output)
    refused = [line for line in output.splitlines() if str(stranger.serial_number) in line]
    assert len(refused) == 1 and "is not for this key" in refused[0], output
    waiting = [line for line in output.splitlines() if "is not valid before" in line]
    assert len(waiting) == 1 and str(later.serial_number) in waiting[0], output


def api_arns() -> dict[str, str]:
    names = ARN_FLAGS[::2]
    values = ARN_FLAGS[1::2]
    return {name[2:].replace("-", "_"): value for name, value in zip(names, values, strict=True)}


# What the source is looked at with, in-process, at chosen moments


def open_session(cert: Path, key: Path | None, **extra: object) -> hwsigner.Session:
    """A session as the long-running modes open it; nothing is sent (``current_identity`` is
    called as each CreateSession calls it). Its first call, at start, is not a look."""
    settings = hwsigner.Settings(
        certificate=str(cert), private_key=str(key) if key else None, **api_arns(),
        endpoint="http://127.0.0.1:9", **extra,
    )  # fmt: skip
    return hwsigner.Session.open(settings)


def test_a_certificate_waits_until_it_is_valid_and_another_keys_is_never_used(
    pki: DevPki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    public_key, cert_path, _ = file_leaf(pki, tmp_path, "source")
    now = datetime.now(timezone.utc)
    with open_session(cert_path, tmp_path / "source.key") as session, caplog.at_level(logging.INFO):
        first = session.current_identity(now).certificate
        stranger = renew(pki, new_key("ec-p256").public_key(), cert_path, "stranger")
        for _ in range(3):
            assert session.current_identity(now).certificate == first
        later = renew(pki, public_key, cert_path, "later", valid_in=3600)
        assert session.current_identity(now).certificate == first
        assert session.current_identity(now + timedelta(minutes=59)).certificate == first
        assert session.current_identity(now + timedelta(minutes=61)).certificate == later
        assert session.current_identity(now + timedelta(minutes=62)).certificate == later
    lines = [r.getMessage() for r in caplog.records]
    assert sum(str(stranger.serial_number) in line for line in lines) == 1, lines
    assert sum("is not valid before" in line for line in lines) == 1, lines
    assert sum(SWITCHED in line for line in lines) == 1, lines


def test_an_unchanged_file_is_only_stat_ed(pki: DevPki, tmp_path: Path) -> None:
    """The content is read again only when device, inode, size or mtime changed: a same-size
    rewrite in place that keeps the mtime goes unseen (what one stat per CreateSession buys)."""
    public_key, cert_path, _ = file_leaf(pki, tmp_path, "stat")
    with open_session(cert_path, tmp_path / "stat.key") as session:
        first = session.current_identity().certificate
        info = cert_path.stat()
        tries = (
            make_leaf(public_key, "stat", pki.issuing, serial=first.serial_number + 1)
            for _ in range(100)
        )  # ECDSA signatures vary in length: one of the same size as the first
        other = next(cert for cert in tries if len(pem(cert)) == info.st_size)
        with open(cert_path, "r+b") as file:  # in place: the same inode
            file.write(pem(other))
        os.utime(cert_path, ns=(info.st_atime_ns, info.st_mtime_ns))
        assert session.current_identity().certificate == first
        os.utime(cert_path, ns=(info.st_atime_ns, info.st_mtime_ns + 1))
        assert session.current_identity().certificate == other


def test_a_renewed_pkcs12_file_is_read_with_the_password_that_opened_it(
    pki: DevPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key("ec-p256")
    path = tmp_path / "device.p12"

    def write_p12(name: str) -> x509.Certificate:
        cert = pki.issue(key.public_key(), name)
        data = pkcs12.serialize_key_and_certificates(
            b"device", key, cert, [pki.issuing[0]], BestAvailableEncryption(b"p12 pass")
        )
        path.with_name("new.p12").write_bytes(data)
        os.replace(path.with_name("new.p12"), path)
        return cert

    write_p12("p12-1")
    monkeypatch.setenv("HWSIGNER_PKCS8_PASSWORD", "p12 pass")
    with open_session(path, None) as session:
        session.current_identity()  # the first CreateSession, at start
        monkeypatch.delenv("HWSIGNER_PKCS8_PASSWORD")  # asking again would fail: no terminal
        renewed = write_p12("p12-2")
        assert session.current_identity().certificate == renewed
        assert session.current_identity().chain == (pki.issuing[0],)


def test_a_renewed_combo_pem_and_a_new_intermediates_file_are_picked_up(
    pki: DevPki, tmp_path: Path
) -> None:
    key = new_key("ec-p256")
    combo, chain = tmp_path / "combo.pem", tmp_path / "chain.pem"
    combo.write_bytes(pem(pki.issue(key.public_key(), "combo-1")) + key_pem(key))
    chain.write_bytes(pem(pki.issuing[0]))
    with open_session(combo, None, intermediates=str(chain)) as session:
        session.current_identity()  # the first CreateSession, at start
        renewed = pki.issue(key.public_key(), "combo-2")
        combo.with_name("new").write_bytes(key_pem(key) + pem(renewed))
        os.replace(combo.with_name("new"), combo)
        assert session.current_identity().certificate == renewed
        assert session.current_identity().chain == (pki.issuing[0],)
        chain.with_name("new").write_bytes(pem(pki.issuing[0]) + pem(pki.root[0]))
        os.replace(chain.with_name("new"), chain)
        assert session.current_identity().chain == (pki.issuing[0], pki.root[0])


def test_an_unreadable_renewal_keeps_the_old_certificate_until_it_is_fixed(
    pki: DevPki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    public_key, cert_path, _ = file_leaf(pki, tmp_path, "broken")
    with open_session(cert_path, tmp_path / "broken.key") as session, caplog.at_level(logging.INFO):
        first = session.current_identity().certificate
        cert_path.write_bytes(b"-----BEGIN CERTIFICATE-----\nhalf written")
        assert session.current_identity().certificate == first
        assert session.current_identity().certificate == first
        cert_path.unlink()
        assert session.current_identity().certificate == first
        renewed = renew(pki, public_key, cert_path, "broken-2")
        assert session.current_identity().certificate == renewed
    told = [r.getMessage() for r in caplog.records if "still signing with" in r.getMessage()]
    assert len(told) == 2, told  # once for the garbage, once for the missing file


# credential-process --cache


def test_the_cache_misses_once_the_certificate_file_changed(
    pki: DevPki, emulator: RunningEmulator, tmp_path: Path
) -> None:
    public_key, cert_path, flags = file_leaf(pki, tmp_path, "cached")
    flags = [*flags, *ARN_FLAGS, "--endpoint", emulator.url, "--cache",
             "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    first = process_credentials(run_cli("credential-process", *flags))
    assert process_credentials(run_cli("credential-process", *flags)) == first  # a hit
    assert create_sessions(emulator.url) == 1
    renewed = renew(pki, public_key, cert_path, "cached-2")
    second = process_credentials(run_cli("credential-process", *flags))
    assert second != first
    assert create_sessions(emulator.url) == 2
    assert last_serial(emulator) == renewed.serial_number


@pytest.mark.softhsm
def test_a_pkcs11_cache_hit_does_not_touch_the_token_and_a_miss_uses_the_renewed_one(
    softhsm: SoftHsm, pki: DevPki, emulator: RunningEmulator, tmp_path: Path
) -> None:
    pytest.importorskip("pkcs11")
    token = softhsm.token()
    public_key = token.keygen("ec-p256", "01", "device")
    token.write_cert(pki.issue(public_key, "cached-token-1"), "01", "device")
    token.write_cert(pki.issuing[0], "10", "issuing-ca")
    uri = token.uri(object="device", pin=True)
    flags = ["--certificate", uri, "--pkcs11-lib", MODULE, *ARN_FLAGS, "--endpoint", emulator.url,
             "--cache", "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    first = process_credentials(run_cli("credential-process", *flags))
    renewed = pki.issue(public_key, "cached-token-2")
    (tmp_path / "renewed.pem").write_bytes(pem(renewed))
    installed = run_cli("import-cert", "--certificate", tmp_path / "renewed.pem",
                        "--private-key", uri, "--pkcs11-lib", MODULE, "--replace")  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    no_token = {"SOFTHSM2_CONF": str(tmp_path / "absent.conf")}  # the token cannot be reached
    assert process_credentials(run_cli("credential-process", *flags, env=no_token)) == first
    assert create_sessions(emulator.url) == 1
    for entry in (tmp_path / "cache").glob("*.json"):
        entry.unlink()  # the next run is a miss
    process_credentials(run_cli("credential-process", *flags))
    assert last_serial(emulator) == renewed.serial_number


@pytest.mark.softhsm
def test_of_two_certificates_for_the_key_on_a_token_the_one_that_expires_last_signs(
    softhsm: SoftHsm, pki: DevPki
) -> None:
    pytest.importorskip("pkcs11")
    token = softhsm.token()
    public_key = token.keygen("ec-p256", "01", "device")
    token.write_cert(pki.issue(public_key, "device-1"), "01", "device")
    token.write_cert(pki.issuing[0], "10", "issuing-ca")
    settings = hwsigner.Settings(
        private_key=token.uri(object="device", pin=True), pkcs11_lib=MODULE, **api_arns(),
        endpoint="http://127.0.0.1:9",
    )  # fmt: skip
    with hwsigner.Session.open(settings) as session:  # the key's URI alone: found by public key
        first = session.current_identity()
        longer = pki.issue(public_key, "device-2", days=400)
        token.write_cert(longer, "01", "device")  # the old one stays, as when a delete failed
        token.write_cert(pki.issue(public_key, "device-3", days=300), "01", "device")
        renewed = session.current_identity()
    assert first.certificate.subject != longer.subject
    assert renewed.certificate == longer
    assert renewed.chain == (pki.issuing[0],)
