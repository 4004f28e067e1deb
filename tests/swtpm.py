"""swtpm for the tests: the lab of scripts/lab/swtpm.py and the skip markers."""

from __future__ import annotations

import shutil

import pytest

from scripts.lab.swtpm import (
    Swtpm,
    free_port_pair,
    openssl_has_tpm2_provider,
    tpm2_pytss_importable,
)

__all__ = ["Swtpm", "free_port_pair", "needs_swtpm", "needs_tpm2_openssl"]

needs_swtpm = pytest.mark.skipif(
    not (shutil.which("swtpm") and shutil.which("tpm2_createprimary") and tpm2_pytss_importable()),
    reason="swtpm, tpm2-tools or tpm2_pytss absent: the TPM tests are skipped"
    " (ci/install.sh installs them; they matter if you use a TPM)",
)
needs_tpm2_openssl = pytest.mark.skipif(
    not openssl_has_tpm2_provider(), reason="needs the tpm2-openssl provider"
)
