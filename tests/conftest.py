"""Fixtures every part of the suite uses: a dev PKI and a running emulator on loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hwsigner.devpki import DevPki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A root CA and an issuing CA in a temporary directory."""
    return DevPki.create(tmp_path_factory.mktemp("pki"))


@dataclass
class RunningEmulator:
    url: str
    process: subprocess.Popen[str]


def start_emulator(*anchors: Path, extra: tuple[str, ...] = ()) -> RunningEmulator:
    """``hwsigner emulator --port 0`` as a subprocess; its first stdout line is its URL."""
    flags = [arg for anchor in anchors for arg in ("--trust-anchor", str(anchor))]
    process = subprocess.Popen(
        [sys.executable, "-m", "hwsigner", "emulator", "--port", "0", *flags, *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        process.kill()
        _, err = process.communicate(timeout=10)
        raise RuntimeError(f"emulator did not start: {url!r} {err}")
    return RunningEmulator(url, process)


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


@pytest.fixture(scope="session")
def emulator(pki: DevPki) -> Iterator[RunningEmulator]:
    """An emulator that trusts the dev PKI's root CA, shared by the whole session."""
    running = start_emulator(pki.root_cert)
    yield running
    stop(running.process)


@pytest.fixture(scope="module")
def own_emulator(pki: DevPki) -> Iterator[RunningEmulator]:
    """An emulator for one test module alone (its tests make the service fail, count calls)."""
    running = start_emulator(pki.root_cert)
    yield running
    stop(running.process)


@pytest.fixture
def flags(pki: DevPki, own_emulator: RunningEmulator, request: pytest.FixtureRequest) -> list[str]:
    """The credential flags of a fresh leaf, against ``own_emulator`` set back to normal."""
    from .delivery import reset, session_flags

    reset(own_emulator.url)
    name = f"{request.module.__name__.rpartition('_')[2]}-{request.node.name[:40]}"
    return session_flags(pki, name, own_emulator.url)
