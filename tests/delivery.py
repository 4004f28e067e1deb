"""What the delivery tests (cache, update, serve, export, API) share: emulator control, leaf
flags, and an environment where the AWS SDKs see only what a test sets up."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hwsigner.devpki import DevPki

from .conftest import RunningEmulator, start_emulator, stop
from .helpers import ARN_FLAGS

# Variables that would let an SDK find credentials somewhere other than where a test points it.
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ENDPOINT_URL_ROLESANYWHERE",
)


def emulator_call(url: str, method: str, name: str, body: object = None) -> Any:
    """A test hook: ``GET /_emulator/stats``, ``POST /_emulator/fail`` and the others."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/_emulator/{name}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def create_sessions(url: str) -> int:
    """How many CreateSession calls the emulator has answered with credentials."""
    return int(emulator_call(url, "GET", "stats")["createSession"])


def fail_service(url: str, count: int = -1, status: int = 503) -> None:
    emulator_call(url, "POST", "fail", {"status": status, "count": count})


def heal_service(url: str) -> None:
    emulator_call(url, "POST", "fail", {"count": 0})


def expire_in(url: str, seconds: int | None) -> None:
    """Make the emulator's next credentials expire ``seconds`` from now (None: as requested)."""
    emulator_call(url, "POST", "settings", {"expiresIn": seconds})


def reset(url: str) -> None:
    emulator_call(url, "POST", "reset", {})


def leaf_flags(pki: DevPki, name: str) -> list[str]:
    """``--certificate``, ``--private-key`` and ``--intermediates`` for a new EC leaf."""
    cert, key = pki.new_leaf("ec-p256", name)
    return [
        "--certificate", str(cert),
        "--private-key", str(key),
        "--intermediates", str(pki.issuing_cert),
    ]  # fmt: skip


def session_flags(pki: DevPki, name: str, endpoint: str) -> list[str]:
    """Every flag a credential command needs against ``endpoint``."""
    return [*leaf_flags(pki, name), *ARN_FLAGS, "--endpoint", endpoint]


def isolate_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, Path]:
    """No AWS settings in the environment but empty config and credentials files (returned),
    and instance metadata off: the SDKs find only what the test then sets up."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    config, credentials = tmp_path / "aws-config", tmp_path / "aws-credentials"
    config.touch()
    credentials.touch()
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return config, credentials


@contextmanager
def private_emulator(pki: DevPki) -> Iterator[RunningEmulator]:
    """An emulator of one's own, for tests that make the service fail or count its calls."""
    running = start_emulator(pki.root_cert)
    try:
        yield running
    finally:
        stop(running.process)
