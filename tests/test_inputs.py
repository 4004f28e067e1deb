"""Inputs without files and without flags: ``env:NAME`` and ``fd:N`` references, bytes and
``cryptography`` objects in the API, ``--instance-property``, ``HWSIGNER_*`` variables, and the
official helper's certificate-store flags refused in one line."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import hwsigner
from hwsigner.cli.sources import OTHER_VARIABLES, REFUSED_VARIABLES, environment_values
from hwsigner.devpki import DevPki
from hwsigner.settings import FIELDS, Settings

from .conftest import RunningEmulator
from .delivery import create_sessions, emulator_call, reset
from .helpers import (
    ACCOUNT,
    ARN_FLAGS,
    PROFILE_ARN,
    ROLE_ARN,
    TRUST_ANCHOR_ARN,
    assert_one_line_error,
    process_credentials,
    run_cli,
)


def run_with_fd(
    args: list[str], fd_data: bytes, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``python -m hwsigner ARGS`` with ``fd_data`` readable on descriptor 3 (a pipe, as
    ``3< <(vault read ...)`` gives one; the shell moves it there) and no stdin."""
    read_end, write_end = os.pipe()
    os.write(write_end, fd_data)  # a key fits the pipe buffer
    os.close(write_end)
    command = ["bash", "-c", f'exec "$0" "$@" 3<&{read_end}', sys.executable, "-m", "hwsigner"]
    try:
        return subprocess.run(
            [*command, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=120,
            pass_fds=(read_end,),
        )
    finally:
        os.close(read_end)


@pytest.fixture
def leaf(pki: DevPki, request: pytest.FixtureRequest) -> tuple[bytes, bytes]:
    cert, key = pki.new_leaf("ec-p256", f"inputs-{request.node.name[:40]}")
    return cert.read_bytes(), key.read_bytes()


def secret_lines(key_pem: bytes) -> list[str]:
    """The base64 lines of a PEM key that hold its private part: the last lines hold the public
    point, which the certificate (sent in the clear, logged by --debug) holds too."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    lines = [line for line in key_pem.decode().splitlines() if "-----" not in line]
    return [*lines[:1], scalar.hex(), base64.b64encode(scalar).decode()[:40]]


@pytest.mark.parametrize("cache", [False, True])
def test_certificate_from_env_and_key_from_fd(
    pki: DevPki,
    leaf: tuple[bytes, bytes],
    own_emulator: RunningEmulator,
    tmp_path: Path,
    cache: bool,
) -> None:
    reset(own_emulator.url)
    cert_pem, key_pem = leaf
    args = [
        "credential-process", "--certificate", "env:CERT", "--private-key", "fd:3",
        "--intermediates", str(pki.issuing_cert), *ARN_FLAGS, "--endpoint", own_emulator.url,
    ]  # fmt: skip
    if cache:
        args += ["--cache", "--cache-dir", str(tmp_path / "cache")]
    env = {"CERT": cert_pem.decode()}
    first = run_with_fd(args, key_pem, env)
    answer = process_credentials(first)
    again = run_with_fd(args, key_pem, env)  # a cache hit reads the pipe once and hashes it
    assert (process_credentials(again) == answer) is cache
    assert create_sessions(own_emulator.url) == (1 if cache else 2)
    debug = run_with_fd([*args, "--debug"], key_pem, env)
    assert debug.returncode == 0, debug.stderr
    for result in (first, again, debug):
        output = result.stdout + result.stderr
        assert not any(line in output for line in secret_lines(key_pem))
        assert "BEGIN" not in output


def test_references_fail_in_one_line(leaf: tuple[bytes, bytes]) -> None:
    base = ["credential-process", *ARN_FLAGS, "--endpoint", "http://127.0.0.1:9"]
    result = run_cli(*base, "--certificate", "env:NO_SUCH_VARIABLE_X", "--private-key", "k.pem")
    assert_one_line_error(result, "env:NO_SUCH_VARIABLE_X", "not set")
    result = run_cli(
        *base, "--certificate", "env:C", "--private-key", "fd:0", env={"C": leaf[0].decode()}
    )
    assert_one_line_error(result, "fd:0", "never stdin")
    result = run_cli(
        *base, "--certificate", "env:C", "--private-key", "fd:7", env={"C": leaf[0].decode()}
    )
    assert_one_line_error(result, "fd:7")


def test_the_api_takes_bytes_and_cryptography_objects(
    pki: DevPki, leaf: tuple[bytes, bytes], emulator: RunningEmulator
) -> None:
    cert_pem, key_pem = leaf
    key = serialization.load_pem_private_key(key_pem, None)
    settings = {
        "trust_anchor_arn": TRUST_ANCHOR_ARN, "profile_arn": PROFILE_ARN, "role_arn": ROLE_ARN,
        "endpoint": emulator.url,
    }  # fmt: skip
    chain = [pki.issuing[0]]
    found = hwsigner.get_credentials(
        certificate=cert_pem,
        private_key=key_pem,
        intermediates=pki.issuing_cert.read_bytes(),
        **settings,
    )
    assert found.access_key_id.startswith("ASIA")
    found = hwsigner.get_credentials(
        certificate=x509.load_pem_x509_certificate(cert_pem), private_key=key, intermediates=chain,
        instance_property={"device": "d-1"}, **settings,
    )  # fmt: skip
    assert found.access_key_id.startswith("ASIA")
    shown = repr(Settings(certificate=cert_pem, private_key=key_pem, **settings))
    assert "BEGIN" not in shown and "<bytes>" in shown


def test_the_emulator_records_the_instance_properties(
    pki: DevPki, flags: list[str], own_emulator: RunningEmulator
) -> None:
    result = run_cli(
        "credential-process", *flags, "--instance-property", "device=d-0001",
        "--instance-property", "site=Lyon 3", env={"HWSIGNER_INSTANCE_PROPERTY": "ignored=yes"},
    )  # fmt: skip
    process_credentials(result)
    last = emulator_call(own_emulator.url, "GET", "stats")["last"]
    assert last["instanceProperties"] == {"device": "d-0001", "site": "Lyon 3"}
    session = emulator_call(own_emulator.url, "GET", "sessions")[-1]
    assert session["decision"] == "allowed"
    assert session["instanceProperties"] == {"device": "d-0001", "site": "Lyon 3"}


@pytest.mark.parametrize(
    ("properties", "needle"),
    [
        (["novalue"], "has no '='"),
        (["=v"], "1 to 200"),
        ([f"k={'v' * 201}"], "1 to 200"),
        ([f"k{n}=v" for n in range(51)], "at most 50"),
        (["k=a\tb"], "control character"),
        (["k=1", "k=2"], "given twice"),
    ],
)
def test_instance_properties_are_checked_before_sending(
    flags: list[str], own_emulator: RunningEmulator, properties: list[str], needle: str
) -> None:
    args = [arg for value in properties for arg in ("--instance-property", value)]
    result = run_cli("credential-process", *flags, *args)
    assert_one_line_error(result, needle)
    assert emulator_call(own_emulator.url, "GET", "stats")["last"] is None


def environment_for(flags: list[str]) -> dict[str, str]:
    """``HWSIGNER_*`` variables holding what ``flags`` say."""
    pairs = zip(flags[::2], flags[1::2], strict=True)
    return {f"HWSIGNER_{flag[2:].upper().replace('-', '_')}": value for flag, value in pairs}


@pytest.mark.parametrize("cache", [False, True])
def test_variables_drive_a_full_credential_process_with_no_flags(
    flags: list[str], own_emulator: RunningEmulator, tmp_path: Path, cache: bool
) -> None:
    env = {
        **environment_for(flags), "HWSIGNER_INSTANCE_PROPERTY": "device=d-2,rack=r9",
        "HWSIGNER_SESSION_DURATION": "900", "HWSIGNER_REUSE_PIN": "no",
        "XDG_CACHE_HOME": str(tmp_path),
    }  # fmt: skip
    extra = ["--cache"] if cache else []
    for _ in range(2):
        process_credentials(run_cli("credential-process", *extra, env=env))
    assert create_sessions(own_emulator.url) == (1 if cache else 2)
    last = emulator_call(own_emulator.url, "GET", "stats")["last"]
    assert last["instanceProperties"] == {"device": "d-2", "rack": "r9"}
    assert last["durationSeconds"] == 900


def test_a_flag_wins_over_its_variable_and_debug_names_the_source(
    flags: list[str], own_emulator: RunningEmulator
) -> None:
    other_role = f"arn:aws:iam::{ACCOUNT}:role/from-the-environment"
    env = {
        **environment_for(flags),
        "HWSIGNER_ROLE_ARN": other_role,
        "HWSIGNER_PKCS8_PASSWORD": "s3cret-value",
    }
    result = run_cli("credential-process", "--role-arn", ROLE_ARN, "--debug", env=env)
    process_credentials(result)
    assert emulator_call(own_emulator.url, "GET", "stats")["last"]["roleArn"] == ROLE_ARN
    assert "--role-arn from flag" in result.stderr
    assert "--trust-anchor-arn from HWSIGNER_TRUST_ANCHOR_ARN" in result.stderr
    assert "--pkcs8-password from HWSIGNER_PKCS8_PASSWORD" in result.stderr
    assert "s3cret-value" not in result.stderr


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"HWSIGNER_NO_VERIFY_SSL": "1"}, "HWSIGNER_NO_VERIFY_SSL is not read"),
        ({"HWSIGNER_REUSE_PIN": "maybe"}, "HWSIGNER_REUSE_PIN takes 1/true/yes or 0/false/no"),
        ({"HWSIGNER_SESSION_DURATION": "1h"}, "HWSIGNER_SESSION_DURATION takes a whole number"),
        ({}, "HWSIGNER_ROLE_ARN"),  # a required setting missing names its variable
    ],
)
def test_bad_variables_fail_in_one_line(env: dict[str, str], needle: str, tmp_path: Path) -> None:
    base = {"HWSIGNER_CERTIFICATE": "c.pem", "HWSIGNER_TRUST_ANCHOR_ARN": TRUST_ANCHOR_ARN,
            "HWSIGNER_PROFILE_ARN": PROFILE_ARN}  # fmt: skip
    if env:
        base["HWSIGNER_ROLE_ARN"] = ROLE_ARN
    for extra in ([], ["--cache", "--cache-dir", str(tmp_path)]):
        assert_one_line_error(run_cli("credential-process", *extra, env={**base, **env}), needle)


@pytest.mark.parametrize(
    "args",
    [["--cert-selector", "Key=x509Subject,Value=CN=a"], ["--system-store-name", "My"],
     ["--use-latest-expiring-certificate"]],
)  # fmt: skip
def test_the_certificate_store_flags_are_refused_in_one_line(args: list[str]) -> None:
    for command in ("credential-process", "update", "serve"):
        result = run_cli(command, *ARN_FLAGS, *args)
        assert_one_line_error(result, args[0], "certificate stores are not supported", "pkcs11:")


def test_each_setting_has_its_own_variable_and_none_is_taken() -> None:
    variables = [row.variable for row in FIELDS if row.variable]
    assert len(set(variables)) == len(variables)
    assert not set(variables) & set(OTHER_VARIABLES)
    assert not set(variables) & set(REFUSED_VARIABLES)
    assert all(
        v == "HWSIGNER_" + row.flag[2:].upper().replace("-", "_")
        for row in FIELDS
        if (v := row.variable)
    )
    # the two variables hwsigner read before this scheme keep their meaning
    assert environment_values(
        {"HWSIGNER_PKCS8_PASSWORD": "p", "HWSIGNER_TPM_KEY_PASSWORD": "t"}
    ) == {
        "pkcs8_password": "p",
        "tpm_key_password": "t",
    }
    assert environment_values({"HWSIGNER_PKCS11_PIN": "1234", "HWSIGNER_AGENT_SOCKET": "/s"}) == {}


def test_the_variable_table_of_the_docs_lists_every_setting() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    table = text.split("## Settings from the environment", 1)[1].split("\n## ", 1)[0]
    for row in FIELDS:
        assert f"| `{row.flag}` | `{row.variable}` |" in table or not row.variable, row.flag
