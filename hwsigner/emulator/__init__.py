"""An offline IAM Roles Anywhere CreateSession endpoint that verifies requests as the service does.

    >>> import tempfile
    >>> from hwsigner.devpki import DevPki
    >>> from hwsigner.emulator import TrustAnchors, running
    >>> pki = DevPki.create(tempfile.mkdtemp())                 # a test CA to trust
    >>> with running(TrustAnchors.load([str(pki.root_cert)])) as server:
    ...     print(server.url)                 # hand it to --endpoint or endpoint=
    http://127.0.0.1:...

Layers, each usable alone: ``verify`` (pure: a received request, trust anchors and a time in, a
``Grant`` or a ``Rejection`` out), ``certs`` (the certificate and chain rules), ``crl``
(revocation lists), ``params`` (the request's parameters, and ``Rejection``), ``model`` (trust
anchors, profiles, roles and CRLs from a file), ``policy`` (trust policies), ``decide``
(CreateSession in the service's order, session tags), ``app`` (routes, test hooks and the
credential set) and ``server`` (HTTP on 127.0.0.1; the command is in ``hwsigner.cli.daemons``).
See docs/emulator.md.
"""

from __future__ import annotations

from .app import Emulator, Reply
from .certs import TrustAnchors
from .crl import Revocations
from .model import Model
from .params import Rejection
from .server import EmulatorServer, running
from .verify import Grant, Received, verify_create_session

__all__ = [
    "Emulator",
    "EmulatorServer",
    "Grant",
    "Model",
    "Received",
    "Rejection",
    "Reply",
    "Revocations",
    "TrustAnchors",
    "running",
    "verify_create_session",
]
