"""The AWS SDK for JavaScript v3 gets credentials from hwsigner, as docs/pkcs11.md and
docs/delivery.md tell users to set it up: ``credential_process`` with a SoftHSM key named by a
quoted ``pkcs11:`` URI (the SDK runs the line through /bin/sh), and ``serve``'s container route
with a token file made as the page says. Also: ``serve`` refuses a token file with a newline,
which botocore and the JavaScript SDKs would refuse later and less clearly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hwsigner.devpki import DevPki

from .conftest import RunningEmulator
from .delivery import AWS_VARIABLES
from .helpers import ARN_FLAGS, REPO, assert_one_line_error, run_cli
from .softhsm import SoftHsm, make_lab, needs_softhsm, softhsm  # noqa: F401

SDK = REPO / ".node" / "node_modules"
needs_js_sdk = pytest.mark.skipif(
    not (shutil.which("node") and (SDK / "@aws-sdk" / "credential-providers").is_dir()),
    reason="node or the AWS SDK for JavaScript v3 (.node/, installed by ci/install.sh when npm "
    "is there) absent: the check that JavaScript clients get credentials is skipped",
)

# Which provider: fromProcess reads the profile's credential_process from AWS_CONFIG_FILE;
# fromHttp is the container provider (AWS_CONTAINER_CREDENTIALS_FULL_URI + token file).
CLIENT = """
const { fromProcess, fromHttp } = require("@aws-sdk/credential-providers");
const provider =
  process.argv.at(-1) === "process" ? fromProcess({ profile: "device" }) : fromHttp({});
provider().then(
  (c) => console.log(JSON.stringify({ id: c.accessKeyId, expiration: c.expiration })),
  (e) => { console.error(String(e)); process.exit(1); },
);
"""


def js_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in AWS_VARIABLES}
    env.update(
        NODE_PATH=str(SDK),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        PYTHONPATH=str(REPO),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        **extra,
    )
    return env


def run_js(mode: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", "-e", CLIENT, "--", mode],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def profile_line(uri: str, module: str, endpoint: str) -> str:
    words = ["hwsigner", "credential-process", "--certificate", uri, "--pkcs11-lib", module]
    return " ".join([*words, *ARN_FLAGS, "--endpoint", endpoint])


@needs_js_sdk
@needs_softhsm
@pytest.mark.softhsm
@pytest.mark.parametrize("quoted", [True, False], ids=["quoted-uri", "unquoted-uri"])
def test_js_credential_process_with_a_token_key(
    quoted: bool,
    softhsm: SoftHsm,  # noqa: F811
    pki: DevPki,
    emulator: RunningEmulator,
    tmp_path: Path,
) -> None:
    """Quoted as the docs write it, the JavaScript SDK gets credentials; unquoted, /bin/sh cuts
    the line at the first ``;`` and the SDK fails: the reason the docs quote it."""
    lab = make_lab(softhsm, pki, "js")
    uri = lab.token.uri(object="ec") + f"?pin-value={lab.token.pin}"
    line = profile_line(f'"{uri}"' if quoted else uri, softhsm.module, emulator.url)
    config = tmp_path / "config"
    config.write_text(f"[profile device]\ncredential_process = {line}\n")
    result = run_js("process", js_env(tmp_path, AWS_CONFIG_FILE=str(config)))
    if quoted:
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["id"].startswith("ASIA")
    else:
        assert result.returncode != 0 and "ASIA" not in result.stdout, result.stdout
        assert "/bin/sh" in result.stderr  # the shell ran "object=ec?..." as a command


@needs_js_sdk
def test_js_container_provider_with_serve(
    pki: DevPki, emulator: RunningEmulator, tmp_path: Path
) -> None:
    """The token file made as docs/delivery.md says; ``serve`` on a free port; fromHttp."""
    token = tmp_path / "token"
    make = """python3 -c 'import secrets; print(secrets.token_hex(32), end="")' > token"""
    subprocess.run(["/bin/sh", "-c", make], cwd=tmp_path, check=True, env=js_env(tmp_path))
    cert, key = pki.new_leaf("ec-p256", "js-serve")
    command = [
        sys.executable, "-m", "hwsigner", "serve", "--port", "0", "--auth-token-file", str(token),
        "--certificate", str(cert), "--private-key", str(key),
        "--intermediates", str(pki.issuing_cert), *ARN_FLAGS, "--endpoint", emulator.url,
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in (server.stdout.readline().strip(), server.stdout.readline().strip())
        )
        env = js_env(
            tmp_path,
            AWS_CONTAINER_CREDENTIALS_FULL_URI=exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
            AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token),
        )
        result = run_js("http", env)
    finally:
        server.terminate()
        server.communicate(timeout=10)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"].startswith("ASIA")


@pytest.mark.parametrize("content", ["a" * 64 + "\n", "two words", "tab\there", ""])
def test_serve_refuses_a_token_file_clients_would_refuse(content: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(content)
    result = run_cli("serve", "--port", "0", "--auth-token-file", str(token), "--certificate",
                     "unused.pem", *ARN_FLAGS)  # fmt: skip
    message = assert_one_line_error(result, str(token))
    assert "token_hex(32), end=" in message  # the command that makes a good one
