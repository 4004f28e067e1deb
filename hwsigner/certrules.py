"""Moved to ``hwsigner.x509rules`` and ``hwsigner.x509certs``.

Kept only for ``keys/pkcs11_find.py`` until its regroup; the lead deletes it at merge.
"""

from __future__ import annotations

from .x509certs import extension, is_ca, issued_by
from .x509rules import CURVES, MIN_RSA_BITS, STRONG_HASHES

__all__ = ["CURVES", "MIN_RSA_BITS", "STRONG_HASHES", "extension", "is_ca", "issued_by"]
