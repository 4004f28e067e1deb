"""SoftHSM for the tests: the lab of scripts/lab/softhsm.py, a skip marker and a session fixture.

from .softhsm import softhsm, needs_softhsm   # the fixture, imported into a test module
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts.lab.softhsm import (
    MODULE,
    PIN,
    Lab,
    SoftHsm,
    SoftToken,
    available,
    make_lab,
    reinitialize_in_process,
)

__all__ = [
    "MODULE",
    "PIN",
    "Lab",
    "SoftHsm",
    "SoftToken",
    "make_lab",
    "needs_softhsm",
    "reinitialize_in_process",
    "softhsm",
]

needs_softhsm = pytest.mark.skipif(
    not available(),
    reason="SoftHSM2 or OpenSC's pkcs11-tool absent: the PKCS#11 tests are skipped"
    " (ci/install.sh installs them; they matter if you use tokens)",
)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A SoftHSM for the whole session; SOFTHSM2_CONF points at it meanwhile."""
    if not available():
        pytest.skip("needs SoftHSM2 (softhsm2-util, libsofthsm2.so) and OpenSC's pkcs11-tool")
    hsm = SoftHsm.create(tmp_path_factory.mktemp("softhsm"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(hsm.conf))
        patch.delenv("HWSIGNER_PKCS11_PIN", raising=False)
        yield hsm
