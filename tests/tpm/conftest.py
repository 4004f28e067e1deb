"""swtpm fixtures for the TPM tests: one emulator per module, and a fresh one on demand.

Tests that count authorization failures or compare two TPMs use ``swtpm`` (their own emulator);
the rest share ``module_swtpm``. Every test module here is marked ``tpm`` and skips cleanly when
swtpm, tpm2-tools or tpm2-pytss is missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.swtpm import Swtpm


@pytest.fixture
def swtpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swtpm]:
    """A swtpm of this test's own, with a fresh state."""
    with Swtpm.running(tmp_path_factory.mktemp("swtpm")) as tpm:
        yield tpm


@pytest.fixture(scope="module")
def module_swtpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swtpm]:
    """A swtpm shared by the tests of one module."""
    with Swtpm.running(tmp_path_factory.mktemp("swtpm")) as tpm:
        yield tpm
