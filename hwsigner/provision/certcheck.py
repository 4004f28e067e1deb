"""Moved to ``hwsigner.x509certs`` and ``hwsigner.x509rules``; kept only for
``provision/install_pkcs11.py`` until its regroup. The lead deletes this module at merge."""

from __future__ import annotations

from ..x509certs import describe

__all__ = ["describe"]
