"""Open once, fetch many: a key and its identity, ready to call CreateSession again and again.

    >>> import hwsigner, tempfile
    >>> from hwsigner.devpki import DevPki
    >>> from hwsigner.emulator import TrustAnchors, running
    >>> pki = DevPki.create(tempfile.mkdtemp())        # a test CA; a device key it certifies
    >>> cert, key = pki.new_leaf("ec-p256", "device")
    >>> ra = "arn:aws:rolesanywhere:us-east-1:111122223333:"
    >>> with running(TrustAnchors.load([str(pki.root_cert)])) as emulator:  # the service, offline
    ...     settings = hwsigner.Settings(
    ...         certificate=str(cert), private_key=str(key), intermediates=str(pki.issuing_cert),
    ...         trust_anchor_arn=ra + "trust-anchor/ta", profile_arn=ra + "profile/pr",
    ...         role_arn="arn:aws:iam::111122223333:role/app", endpoint=emulator.url)
    ...     with hwsigner.Session.open(settings) as session:  # a token: one login for both
    ...         first, second = session.fetch(), session.fetch()
    >>> first.access_key_id != second.access_key_id
    True
    >>> s3 = hwsigner.boto3_session(**arns).client("s3")      # doctest: +SKIP

``Session`` is what every delivery mode runs on: ``credential-process`` fetches once, ``update``
and ``serve`` hand ``fetch`` to a ``CredentialKeeper``; ``serve --config`` opens one and
``share``s it with each further role (one key, one login, one refresh schedule per role).
Each ``fetch`` signs with the certificate at its source *then* (``hwsigner.certwatch``): a
renewed one is used without a restart. The Python API's keywords are the fields of
``hwsigner.Settings``, which mirror the CLI flags. ``boto3_session`` keeps the key open (one
PKCS#11 login, one TPM primary) for the life of the boto3 session and plugs into botocore
through its public credential-provider interface.
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Mapping
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .credentials import Credentials
from .delivery import KEEPER_REFRESH_MARGIN
from .errors import ConfigError, needs_extra
from .settings import Settings

if TYPE_CHECKING:
    from datetime import datetime

    import boto3

    from .certwatch import CertificateWatch
    from .identity import Identity
    from .keys import KeyBackend
    from .rolesanywhere import Target, Transport


class Session:
    """An open key, the identity it signs with, and where CreateSession goes; ``open`` opens."""

    def __init__(
        self,
        settings: Settings,
        identity: Identity,
        key: KeyBackend,
        transport: Transport,
        target: Target,
        env: Mapping[str, str] | None = None,
        *,
        source: CertificateWatch | None = None,
    ) -> None:
        self.settings = settings
        self.key = key
        self.transport = transport
        self.target = target
        self._identity = identity
        self._env = env
        self._source = source  # where a renewed certificate shows up (None: never looked at)
        self._owner: Session | None = None  # the session that opened the key, when shared

    @classmethod
    def open(
        cls,
        settings: Settings,
        transport: Transport | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> Session:
        """Check the request (ARN, region and duration mistakes surface before the key is
        opened), open the key and its certificate, and build the transport."""
        from .certwatch import CertificateWatch, WatchedFiles
        from .identity import open_identity
        from .rolesanywhere import resolve
        from .transport import HttpTransport

        target = resolve(settings, env)
        files = WatchedFiles.of(settings.certificate, settings.intermediates)
        opened = open_identity(
            settings.certificate,
            settings.private_key,
            settings.intermediates,
            settings.key_options(),
        )
        if transport is None:
            transport = HttpTransport.from_env(
                os.environ if env is None else env, verify=not settings.no_verify_ssl
            )
        source = CertificateWatch.start(opened, files)
        return cls(settings, opened.identity, opened.key, transport, target, env, source=source)

    def share(self, settings: Settings) -> Session:
        """A session for another request (another role, profile or duration) on this open key:
        it signs with this session's identity and key, through its transport; its ``close``
        leaves the key open for this session to close. ``settings`` are checked as ``open``
        checks them; their key and certificate fields are not used."""
        from .rolesanywhere import resolve

        target = resolve(settings, self._env)
        shared = Session(settings, self._identity, self.key, self.transport, target, self._env)
        shared._owner = self._owner or self
        return shared

    def current_identity(self, now: datetime | None = None) -> Identity:
        """The certificate and chain the next CreateSession is signed with: the certificate
        source is looked at again (one ``stat`` per file; a token's certificate list), and a
        renewed certificate is used once it is valid and holds the key (``hwsigner.certwatch``).
        """
        if self._owner is not None:
            return self._owner.current_identity(now)
        if self._source is not None:
            self._identity = self._source.current(now)
        return self._identity

    def fetch(self) -> Credentials:
        """Call CreateSession (retrying 5xx and throttling) and return the credentials."""
        from .rolesanywhere import request_credentials

        return request_credentials(
            self.settings,
            self.current_identity(),
            self.key,
            transport=self.transport,
            env=self._env,
            target=self.target,
        )

    def close(self) -> None:
        """Close the key (log out of the token), unless shared from another session. Safe to
        call twice."""
        if self._owner is None:
            self.key.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def get_credentials(**settings: Any) -> Credentials:
    """Open the key, call CreateSession once, close the key: ``credential-process`` in Python.

    The keywords are the fields of ``hwsigner.Settings``.
    """
    with Session.open(Settings(**settings)) as session:
        return session.fetch()


def create_session(**settings: Any) -> Credentials:
    """Deprecated: ``get_credentials``, under the name it had until 0.1."""
    warnings.warn(
        "hwsigner.create_session is deprecated: use hwsigner.get_credentials",
        DeprecationWarning,
        stacklevel=2,
    )
    return get_credentials(**settings)


def boto3_session(
    *,
    refresh_margin: int = KEEPER_REFRESH_MARGIN,
    region_name: str | None = None,
    **settings: Any,
) -> boto3.Session:
    """A ``boto3.Session`` whose credentials come from Roles Anywhere and refresh themselves.

    The keywords are the fields of ``hwsigner.Settings``, plus these two. The first credentials
    are fetched now, so mistakes surface here. New ones are fetched when fewer than
    ``refresh_margin`` seconds remain. The key stays open until the session is
    garbage-collected. ``region_name`` is the session's default region for AWS clients
    (``region`` is the Roles Anywhere signing region).
    """
    from .delivery.keeper import CredentialKeeper

    request = Settings(**settings)
    margin = timedelta(seconds=refresh_margin)
    if margin <= timedelta(0):
        raise ConfigError("refresh_margin must be a positive number of seconds")
    with needs_extra("boto3"):
        from .delivery import boto
    opened = Session.open(request)
    try:
        first = opened.fetch()
    except BaseException:
        opened.close()
        raise
    keeper = CredentialKeeper(opened.fetch, initial=first, refresh_margin=margin)
    session = boto.refreshing_session(keeper, region_name=region_name)
    weakref.finalize(session, opened.close)
    return session


__all__ = ["Session", "boto3_session", "get_credentials"]
