# ruff: noqa: F811 - pytest fixtures imported from tests.softhsm are redefined as arguments
"""The PKCS#11 backend in this process, against real SoftHSM tokens filled by pkcs11-tool.

Each token is made by ``softhsm2-util`` and filled by OpenSC's ``pkcs11-tool`` (keys generated
inside the token, certificates from the dev PKI written next to them), never by hwsigner.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("pkcs11")

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from hwsigner.devpki import DevPki, new_key, pem
from hwsigner.errors import (
    CertificateError,
    ConfigError,
    KeySourceError,
    PasswordError,
)
from hwsigner.identity import load_identity
from hwsigner.keys import KeyOptions, open_key
from hwsigner.keys.pkcs11 import COUNTERS, Pkcs11Key, list_certificates
from hwsigner.rolesanywhere import request_credentials
from hwsigner.settings import Settings

from .conftest import RunningEmulator
from .helpers import PROFILE_ARN, ROLE_ARN, TRUST_ANCHOR_ARN
from .softhsm import MODULE, Lab, SoftHsm, make_lab, softhsm  # noqa: F401 (a fixture)

pytestmark = pytest.mark.softhsm
OPTIONS = KeyOptions(pkcs11_lib=MODULE)


@pytest.fixture(scope="module")
def lab(softhsm: SoftHsm, pki: DevPki) -> Lab:
    return make_lab(softhsm, pki, "softhsm", with_root=True)


@pytest.fixture
def opened() -> Iterator[list[Pkcs11Key]]:
    """Keys a test opens; closed after it so that the next test logs in afresh."""
    keys: list[Pkcs11Key] = []
    yield keys
    for key in keys:
        key.close()


def open_pkcs11(opened: list[Pkcs11Key], uri: str, options: KeyOptions = OPTIONS) -> Pkcs11Key:
    key = open_key(uri, options, certificate_ref=uri)
    assert isinstance(key, Pkcs11Key)
    opened.append(key)
    return key


def verify(
    public_key: object, signature: bytes, message: bytes, algorithm: hashes.HashAlgorithm
) -> None:
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, message, padding.PKCS1v15(), algorithm)
    else:
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        public_key.verify(signature, message, ec.ECDSA(algorithm))


@pytest.mark.parametrize("digest", ["SHA256", "SHA384", "SHA512"])
def test_ec_key_by_object_signs_der(lab: Lab, opened: list[Pkcs11Key], digest: str) -> None:
    key = open_pkcs11(opened, lab.token.uri(object="ec", pin=True))
    assert key.certificate == lab.ec_cert
    signature = key.sign(b"message", digest)  # type: ignore[arg-type]
    assert signature[0] == 0x30  # DER Ecdsa-Sig-Value, not raw r||s
    verify(lab.ec_cert.public_key(), signature, b"message", getattr(hashes, digest)())


def test_rsa_key_by_id(lab: Lab, opened: list[Pkcs11Key]) -> None:
    key = open_pkcs11(opened, lab.token.uri(id="%02", pin=True))
    assert key.certificate == lab.rsa_cert
    before = dict(COUNTERS.by_mechanism)
    verify(lab.rsa_cert.public_key(), key.sign(b"message"), b"message", hashes.SHA256())
    assert COUNTERS.by_mechanism["SHA256_RSA_PKCS"] == before.get("SHA256_RSA_PKCS", 0) + 1


@pytest.mark.parametrize("digest", ["SHA256", "SHA384", "SHA512"])
def test_rsa_falls_back_to_raw_pkcs1_over_digest_info(
    lab: Lab, opened: list[Pkcs11Key], digest: str
) -> None:
    key = open_pkcs11(opened, lab.token.uri(object="rsa", pin=True))
    without_combined = replace(key.settings, mechanisms=frozenset({0x1}))  # CKM_RSA_PKCS only
    fallback = Pkcs11Key(key.token, key.key, key.public_key, without_combined)
    before = COUNTERS.by_mechanism.get("RSA_PKCS", 0)
    signature = fallback.sign(b"message", digest)  # type: ignore[arg-type]
    assert COUNTERS.by_mechanism["RSA_PKCS"] == before + 1
    # PKCS#1 v1.5 is deterministic: both ways give the same bytes
    assert signature == key.sign(b"message", digest)  # type: ignore[arg-type]
    verify(lab.rsa_cert.public_key(), signature, b"message", getattr(hashes, digest)())


def test_n_signatures_cost_one_login_and_no_trial_signature(lab: Lab) -> None:
    logins, signatures = COUNTERS.logins, COUNTERS.signatures
    uri = lab.token.uri(object="ec", pin=True)
    identity, key = load_identity(uri, options=OPTIONS)
    with key:
        for n in range(25):
            key.sign(b"message %d" % n)
    assert COUNTERS.logins == logins + 1
    assert COUNTERS.signatures == signatures + 25  # not one more: no trial signature
    assert identity.certificate == lab.ec_cert


def test_n_create_sessions_cost_one_login(lab: Lab, emulator: RunningEmulator) -> None:
    """A long-running user (serve, update, the Python API) keeps one logged-in session."""
    logins, signatures = COUNTERS.logins, COUNTERS.signatures
    identity, key = load_identity(lab.token.uri(object="rsa", pin=True), options=OPTIONS)
    params = Settings(
        trust_anchor_arn=TRUST_ANCHOR_ARN,
        profile_arn=PROFILE_ARN,
        role_arn=ROLE_ARN,
        endpoint=emulator.url,
    )
    with key:
        for _ in range(5):
            assert request_credentials(params, identity, key, env={}).access_key_id
    assert (COUNTERS.logins, COUNTERS.signatures) == (logins + 1, signatures + 5)


def test_chain_holds_only_real_issuers(lab: Lab, opened: list[Pkcs11Key]) -> None:
    key = open_pkcs11(opened, lab.token.uri(object="ec", pin=True))
    assert key.chain == (lab.pki.issuing[0],)  # not the leaf, the root or the unrelated CA


def test_key_uri_alone_finds_its_certificate_and_chain(lab: Lab) -> None:
    identity, key = load_identity(None, lab.token.uri(object="rsa", pin=True), options=OPTIONS)
    key.close()
    assert identity.certificate == lab.rsa_cert
    assert identity.chain == (lab.pki.issuing[0],)


def test_intermediates_win_over_the_token_chain(lab: Lab, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(pem(lab.pki.root[0]))
    identity, key = load_identity(
        lab.token.uri(object="ec", pin=True), intermediates=str(other), options=OPTIONS
    )
    key.close()
    assert identity.chain == (lab.pki.root[0],)


def test_hybrid_certificate_file_picks_the_token_key(lab: Lab, tmp_path: Path) -> None:
    cert_file = tmp_path / "rsa.pem"
    cert_file.write_bytes(pem(lab.rsa_cert))
    # the URI names only the token: the certificate file tells its two keys apart
    identity, key = load_identity(str(cert_file), lab.token.uri(pin=True), options=OPTIONS)
    with key:
        assert identity.certificate == lab.rsa_cert
        assert key.certificate is None and identity.chain == ()
        verify(lab.rsa_cert.public_key(), key.sign(b"m"), b"m", hashes.SHA256())


def test_certificate_for_another_key_is_refused(lab: Lab, tmp_path: Path) -> None:
    cert_file = tmp_path / "foreign.pem"
    cert_file.write_bytes(pem(lab.pki.issue(new_key("ec-p256").public_key(), "foreign")))
    with pytest.raises(CertificateError, match=re.escape("public key is not the key's")):
        load_identity(str(cert_file), lab.token.uri(pin=True), options=OPTIONS)


def test_private_certificate_is_found_after_login(softhsm: SoftHsm, pki: DevPki) -> None:
    token = softhsm.token()
    cert = pki.issue(token.keygen("ec-p256", "07", "hidden"), "hidden")
    token.write_cert(cert, "07", "hidden", private=True)
    [listed] = list_certificates(token.uri(pin=True), MODULE)  # none without login: logs in
    assert listed.certificate == cert
    identity, key = load_identity(token.uri(object="hidden", pin=True), options=OPTIONS)
    key.close()
    assert identity.certificate == cert


def test_several_matching_certificates_are_listed(lab: Lab) -> None:
    with pytest.raises(ConfigError) as caught:
        open_key(lab.token.uri(pin=True), OPTIONS, certificate_ref=lab.token.uri(pin=True))
    message = str(caught.value)
    assert message.startswith("5 certificates match pkcs11:token=")
    assert "object=ec;type=cert" in message and "object=unrelated;type=cert" in message
    assert lab.token.pin not in message


def test_listed_uris_select_exactly_one_certificate(lab: Lab) -> None:
    listed = list_certificates(lab.token.uri(), MODULE)
    assert len(listed) == 5
    for item in listed:
        [again] = list_certificates(item.uri, MODULE)
        assert again.certificate == item.certificate


def test_wrong_pin_is_tried_once_and_reported(lab: Lab) -> None:
    logins = COUNTERS.logins
    uri = lab.token.uri(object="ec") + "?pin-value=9999"
    with pytest.raises(PasswordError) as caught:
        open_key(uri, OPTIONS, certificate_ref=uri)
    assert COUNTERS.logins == logins + 1
    assert str(caught.value).startswith(f"wrong PIN for token '{lab.token.label}'")
    assert "PIN count low" in str(caught.value)  # SoftHSM's flag after a failed login
    assert "9999" not in str(caught.value) and "9999" not in str(caught.value.hint)


def test_pin_sources(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each source gives the PIN: one login, a signature that verifies; a wrong one is refused."""
    pin_file = tmp_path / "pin"
    pin_file.write_text(f"{lab.token.pin}\nsecond line is ignored\n")
    command = tmp_path / "get-pin"
    command.write_text(f"#!/bin/sh\necho {lab.token.pin}\necho ignored too\n")
    command.chmod(stat.S_IRWXU)
    base = lab.token.uri(object="ec")
    sources = {
        "file": f"{base}?pin-source=file:{pin_file}",
        "command": f"{base}?pin-source=|{command}",
        "environment": base,
    }
    for name, uri in sources.items():
        if name == "environment":
            monkeypatch.setenv("HWSIGNER_PKCS11_PIN", lab.token.pin)
        logins = COUNTERS.logins
        with open_key(uri, OPTIONS, certificate_ref=uri) as key:
            verify(lab.ec_cert.public_key(), key.sign(b"m"), b"m", hashes.SHA256())
        assert COUNTERS.logins == logins + 1, name
    wrong_file = tmp_path / "wrong-pin"
    wrong_file.write_text("not-the-pin\n")
    uri = f"{base}?pin-source=file:{wrong_file}"
    with pytest.raises(PasswordError, match="wrong PIN for token"):
        open_key(uri, OPTIONS, certificate_ref=uri)


def no_terminal() -> None:
    """Skip when this process has a terminal: the backend would ask on it."""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR))
    except OSError:
        return
    pytest.skip("a terminal is attached: the PIN would be asked for (the CLI tests cover it)")


def test_no_pin_and_no_terminal_says_how_to_give_one(lab: Lab) -> None:
    no_terminal()
    uri = lab.token.uri(object="ec")
    with pytest.raises(ConfigError) as caught:
        open_key(uri, OPTIONS, certificate_ref=uri)
    assert "is needed and there is no terminal to ask on" in str(caught.value)
    assert "HWSIGNER_PKCS11_PIN" in str(caught.value.hint)


def test_always_authenticate_key_logs_in_for_every_signature(
    softhsm: SoftHsm, pki: DevPki, opened: list[Pkcs11Key]
) -> None:
    token = softhsm.token()
    cert = pki.issue(token.keygen("ec-p256", "02", "sig-9c", always_auth=True), "always")
    token.write_cert(cert, "02", "sig-9c")
    uri = token.uri(object="sig-9c", pin=True)
    key = open_pkcs11(opened, uri, replace(OPTIONS, reuse_pin=True))
    context_logins, logins = COUNTERS.context_logins, COUNTERS.logins
    for _ in range(3):
        verify(cert.public_key(), key.sign(b"m"), b"m", hashes.SHA256())
    assert COUNTERS.context_logins == context_logins + 3
    assert COUNTERS.logins == logins


def test_always_authenticate_without_reuse_pin_needs_a_terminal(
    softhsm: SoftHsm, pki: DevPki, opened: list[Pkcs11Key]
) -> None:
    token = softhsm.token()
    cert = pki.issue(token.keygen("ec-p256", "02", "sig-9c", always_auth=True), "always")
    token.write_cert(cert, "02", "sig-9c")
    key = open_pkcs11(opened, token.uri(object="sig-9c", pin=True))
    no_terminal()
    with pytest.raises(ConfigError) as caught:
        key.sign(b"m")
    assert "PIN for key 'sig-9c'" in str(caught.value)
    assert "--reuse-pin" in str(caught.value.hint)


def test_lost_session_is_reopened_once(lab: Lab, opened: list[Pkcs11Key]) -> None:
    key = open_pkcs11(opened, lab.token.uri(object="ec", pin=True))
    key.sign(b"before")
    reopens, logins = COUNTERS.reopens, COUNTERS.logins
    key.token.session.close()  # as if the device had dropped it
    verify(lab.ec_cert.public_key(), key.sign(b"after"), b"after", hashes.SHA256())
    assert (COUNTERS.reopens, COUNTERS.logins) == (reopens + 1, logins + 1)


def test_unknown_token_lists_the_tokens_there_are(lab: Lab) -> None:
    with pytest.raises(KeySourceError) as caught:
        open_key("pkcs11:token=nope;object=ec", OPTIONS, certificate_ref="pkcs11:token=nope")
    assert "no PKCS#11 token matches pkcs11:token=nope" in str(caught.value)
    assert repr(lab.token.label) in str(caught.value.hint)


def test_missing_module_is_named(lab: Lab) -> None:
    options = KeyOptions(pkcs11_lib="/nonexistent/libpkcs11.so")
    with pytest.raises(KeySourceError, match=re.escape("not found: /nonexistent/libpkcs11.so")):
        open_key(lab.token.uri(object="ec"), options)


def test_file_that_is_no_module_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "libbogus.so"
    bogus.write_bytes(b"not a shared object")
    with pytest.raises(KeySourceError, match=re.escape(f"cannot load the PKCS#11 module {bogus}")):
        open_key("pkcs11:token=x", KeyOptions(pkcs11_lib=str(bogus)))
