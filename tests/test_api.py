# ruff: noqa: F811 - pytest fixtures imported from tests.softhsm are redefined as arguments
"""The Python API: ``hwsigner.get_credentials`` and ``hwsigner.boto3_session`` against the
emulator, and the examples of docs/python-api.md, run as written."""

from __future__ import annotations

import gc
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

import hwsigner
from hwsigner.errors import ConfigError, ServiceError

from .conftest import RunningEmulator
from .delivery import (
    create_sessions,
    emulator_call,
    expire_in,
    fail_service,
    private_emulator,
    reset,
)
from .helpers import PROFILE_ARN, REPO, ROLE_ARN, TRUST_ANCHOR_ARN
from .softhsm import SoftHsm, needs_softhsm, softhsm  # noqa: F401 (a fixture)

ARNS = {"trust_anchor_arn": TRUST_ANCHOR_ARN, "profile_arn": PROFILE_ARN, "role_arn": ROLE_ARN}


@pytest.fixture(scope="module")
def own_emulator(pki) -> Iterator[RunningEmulator]:
    with private_emulator(pki) as running:
        yield running


@pytest.fixture
def source(pki, own_emulator: RunningEmulator, request: pytest.FixtureRequest) -> dict[str, str]:
    """Keyword arguments naming a new leaf, its key, the chain, the ARNs and the endpoint."""
    reset(own_emulator.url)
    cert, key = pki.new_leaf("ec-p256", f"api-{request.node.name[:40]}")
    return {
        "certificate": str(cert),
        "private_key": str(key),
        "intermediates": str(pki.issuing_cert),
        "endpoint": own_emulator.url,
        **ARNS,
    }


def last_issued(emulator: RunningEmulator) -> dict[str, str]:
    return emulator_call(emulator.url, "GET", "stats")["last"]  # type: ignore[no-any-return]


def test_get_credentials_returns_the_services_credentials(
    source: dict[str, str], own_emulator: RunningEmulator
) -> None:
    found = hwsigner.get_credentials(**source, session_duration=900, role_session_name="agent-7")
    assert isinstance(found, hwsigner.Credentials)
    issued = last_issued(own_emulator)
    assert found.access_key_id == issued["accessKeyId"]
    assert issued["roleSessionName"] == "agent-7" and issued["durationSeconds"] == 900
    assert found.expiration.tzinfo is not None and found.expiration > datetime.now(timezone.utc)
    assert found.secret_access_key not in repr(found) and found.session_token not in repr(found)


def test_mistakes_in_the_arns_surface_before_the_key_is_opened(source: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="--role-arn"):
        hwsigner.get_credentials(**{**source, "role_arn": "role/x", "private_key": "/missing"})


def test_service_errors_are_hwsigner_errors(
    source: dict[str, str], own_emulator: RunningEmulator
) -> None:
    fail_service(own_emulator.url, status=403)
    with pytest.raises(ServiceError, match="AccessDenied"):
        hwsigner.get_credentials(**source)
    fail_service(own_emulator.url, status=403)
    with pytest.raises(ServiceError, match="AccessDenied"):
        hwsigner.boto3_session(**source)


def test_boto3_session_has_the_services_credentials(
    source: dict[str, str], own_emulator: RunningEmulator
) -> None:
    import boto3

    session = hwsigner.boto3_session(**source, region_name="eu-west-1")
    assert isinstance(session, boto3.Session)
    assert session.region_name == "eu-west-1"
    found = session.get_credentials()
    assert found.method == "hwsigner-rolesanywhere"
    frozen = found.get_frozen_credentials()
    assert frozen.access_key == last_issued(own_emulator)["accessKeyId"]
    assert frozen.secret_key and frozen.token
    client = session.client("sts", region_name="us-east-1")
    assert client.meta.region_name == "us-east-1"  # a real client can be built on it
    assert create_sessions(own_emulator.url) == 1


def test_boto3_session_refreshes_when_its_credentials_expire(
    source: dict[str, str], own_emulator: RunningEmulator
) -> None:
    expire_in(own_emulator.url, 3)
    session = hwsigner.boto3_session(**source)
    found = session.get_credentials()
    first = found.get_frozen_credentials()
    time.sleep(3.5)  # the first credentials have expired
    second = found.get_frozen_credentials()
    assert second.access_key != first.access_key
    assert second.access_key == last_issued(own_emulator)["accessKeyId"]
    assert create_sessions(own_emulator.url) >= 2


def test_the_names_before_0_2_still_work_and_warn(
    source: dict[str, str], own_emulator: RunningEmulator
) -> None:
    from hwsigner import rolesanywhere

    with pytest.warns(DeprecationWarning, match="use hwsigner.get_credentials"):
        found = hwsigner.create_session(**source)
    assert found.access_key_id == last_issued(own_emulator)["accessKeyId"]
    with pytest.warns(DeprecationWarning, match="use hwsigner.Settings"):
        params = rolesanywhere.SessionParams(
            TRUST_ANCHOR_ARN, PROFILE_ARN, ROLE_ARN, 900, endpoint=own_emulator.url
        )
    assert params == hwsigner.Settings(**ARNS, session_duration=900, endpoint=own_emulator.url)
    identity, key = hwsigner.load_identity(
        source["certificate"], source["private_key"], source["intermediates"]
    )
    with key, pytest.warns(DeprecationWarning, match="use request_credentials"):
        found = rolesanywhere.create_session(params, identity, key)
    assert found.access_key_id == last_issued(own_emulator)["accessKeyId"]
    assert "create_session" not in hwsigner.__all__ and "SessionParams" not in hwsigner.__all__


def test_a_session_opens_once_and_fetches_many(
    source: dict[str, str], own_emulator: RunningEmulator
) -> None:
    settings = hwsigner.Settings(**source)
    with hwsigner.Session.open(settings) as session:
        keys = {session.fetch().access_key_id for _ in range(3)}
        assert session.current_identity().certificate.subject.rfc4514_string()
    assert len(keys) == 3 and create_sessions(own_emulator.url) == 3


def test_settings_hide_secrets_and_refuse_unknown_keywords() -> None:
    settings = hwsigner.Settings(**ARNS, pkcs8_password="hunter2", tpm_key_password="hunter3")
    assert "hunter" not in repr(settings) and "role_arn" in repr(settings)
    with pytest.raises(TypeError, match="unexpected keyword argument 'role'"):
        hwsigner.Settings(**ARNS, role="x")
    with pytest.raises(AttributeError):
        settings.region = "eu-west-1"  # type: ignore[misc]
    assert settings.replace(region="eu-west-1").region == "eu-west-1"


def test_a_refresh_margin_must_be_positive(source: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="refresh_margin"):
        hwsigner.boto3_session(**source, refresh_margin=0)


def test_the_names_are_light_to_import() -> None:
    code = (
        "import sys, hwsigner\n"
        "hwsigner.get_credentials, hwsigner.boto3_session, hwsigner.CredentialKeeper\n"
        "hwsigner.Session, hwsigner.Settings\n"
        "print(' '.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in out.stdout.split()}
    assert not loaded & {"boto3", "botocore", "cryptography", "pkcs11", "tpm2_pytss"}


def test_without_boto3_the_error_names_the_extra(source: dict[str, str]) -> None:
    code = (
        "import sys, json\n"
        "sys.modules['boto3'] = None\n"
        "import hwsigner\n"
        f"try:\n    hwsigner.boto3_session(**json.loads({json_literal(source)!r}))\n"
        "except hwsigner.ConfigError as exc:\n    print(exc, exc.hint)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'hwsigner[boto3]'" in out.stdout


def json_literal(data: dict[str, str]) -> str:
    import json

    return json.dumps(data)


@needs_softhsm
@pytest.mark.softhsm
def test_a_pkcs11_key_is_logged_in_once_for_the_sessions_life(
    softhsm: SoftHsm, pki, own_emulator: RunningEmulator, tmp_path: Path
) -> None:
    pytest.importorskip("pkcs11")
    reset(own_emulator.url)
    token = softhsm.token()
    token.write_cert(pki.issue(token.keygen("ec-p256", "01", "ra"), "api-pkcs11"), "01", "ra")
    reads = tmp_path / "pin-reads"
    pin_command = tmp_path / "pin.sh"
    pin_command.write_text(f"#!/bin/sh\necho read >> {reads}\necho {token.pin}\n")
    pin_command.chmod(0o700)
    uri = f"{token.uri(object='ra')}?pin-source=|{pin_command}&module-path={softhsm.module}"
    expire_in(own_emulator.url, 3)
    session = hwsigner.boto3_session(
        certificate=uri, intermediates=str(pki.issuing_cert), endpoint=own_emulator.url, **ARNS
    )
    found = session.get_credentials()
    keys = {found.get_frozen_credentials().access_key}
    for _ in range(2):
        time.sleep(3.5)
        keys.add(found.get_frozen_credentials().access_key)
    assert len(keys) >= 3  # at least two refreshes, each signed on the token
    assert reads.read_text().splitlines() == ["read"]  # one login
    del session, found
    gc.collect()


# docs/python-api.md: every ```python block runs, in order, in one namespace.


def doc_blocks() -> list[str]:
    text = (REPO / "docs" / "python-api.md").read_text()
    return re.findall(r"(?<!<!-- not run -->\n)```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_python_api_page_examples_run(
    pki, own_emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = doc_blocks()
    assert len(blocks) >= 3
    reset(own_emulator.url)
    cert, key = pki.new_leaf("ec-p256", "docs-example")
    for name, path in (
        ("device.pem", cert),
        ("device.key", key),
        ("ca-chain.pem", pki.issuing_cert),
    ):
        (tmp_path / name).write_bytes(Path(path).read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_ROLESANYWHERE", own_emulator.url)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "docs/python-api.md", "exec"), namespace)  # noqa: S102
    assert create_sessions(own_emulator.url) >= 2
