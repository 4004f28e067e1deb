"""Moved to ``hwsigner.x509rules``; kept only for ``keys/pkcs11_find.py`` until its regroup.

The lead deletes this module at merge, once nothing imports it.
"""

from __future__ import annotations

from .x509rules import CURVES, MIN_RSA_BITS, STRONG_HASHES, extension, is_ca, issued_by

__all__ = ["CURVES", "MIN_RSA_BITS", "STRONG_HASHES", "extension", "is_ca", "issued_by"]
