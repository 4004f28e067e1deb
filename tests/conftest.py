"""Fixtures every part of the suite uses: a dev PKI and a running emulator on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hwsigner.devpki import DevPki
from scripts.lab import RunningEmulator, start_emulator, stop

__all__ = ["RunningEmulator", "start_emulator", "stop"]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A root CA and an issuing CA in a temporary directory."""
    return DevPki.create(tmp_path_factory.mktemp("pki"))


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
