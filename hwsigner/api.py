"""Credentials for Python programs: one call, or a boto3 session that refreshes itself.

    >>> import hwsigner
    >>> arns = dict(trust_anchor_arn="arn:aws:rolesanywhere:...", profile_arn="arn:...",
    ...             role_arn="arn:aws:iam::111122223333:role/app")   # doctest: +SKIP
    >>> hwsigner.create_session(certificate="pkcs11:token=dev;object=ra", **arns)
    ...                                                               # doctest: +SKIP
    Credentials(access_key_id='ASIA...', expiration='...')
    >>> session = hwsigner.boto3_session(certificate="leaf.pem", private_key="leaf.key",
    ...                                  **arns)                      # doctest: +SKIP
    >>> session.client("s3").list_buckets()                           # doctest: +SKIP

Keyword names mirror the CLI flags. ``boto3_session`` keeps the key open (one PKCS#11 login,
one TPM primary) for the life of the session and plugs into botocore through its public
credential-provider interface: botocore asks for new credentials as expiry nears, and a
``CredentialKeeper`` makes sure threads share one CreateSession.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from .credentials import Credentials
from .errors import ConfigError, needs_extra
from .refresher import REFRESH_MARGIN, CredentialKeeper

if TYPE_CHECKING:
    import boto3

    from .keys import KeyBackend


@dataclass(frozen=True, slots=True)
class Settings:
    """The keyword arguments of ``create_session`` and ``boto3_session``."""

    certificate: str | None
    private_key: str | None
    intermediates: str | None
    trust_anchor_arn: str
    profile_arn: str
    role_arn: str
    region: str | None = None
    endpoint: str | None = None
    session_duration: int = 3600
    role_session_name: str | None = None
    pkcs11_lib: str | None = None
    reuse_pin: bool = False
    pkcs8_password: str | None = field(default=None, repr=False)
    tpm_key_password: str | None = field(default=None, repr=False)
    no_tpm_key_password: bool = False
    tpm_tcti: str | None = None
    no_verify_ssl: bool = False

    def open(self) -> tuple[Callable[[], Credentials], KeyBackend]:
        """Check the request, open the key; return a CreateSession call bound to it, and the key.

        ARN, region and duration mistakes surface before the key is opened.
        """
        from .identity import load_identity
        from .keys import KeyOptions
        from .rolesanywhere import SessionParams, create_session, resolve
        from .transport import HttpTransport

        params = SessionParams(
            trust_anchor_arn=self.trust_anchor_arn,
            profile_arn=self.profile_arn,
            role_arn=self.role_arn,
            session_duration=self.session_duration,
            role_session_name=self.role_session_name,
            region=self.region,
            endpoint=self.endpoint,
        )
        resolve(params)
        transport = HttpTransport.from_env(os.environ, verify=not self.no_verify_ssl)
        options = KeyOptions(
            pkcs11_lib=self.pkcs11_lib,
            reuse_pin=self.reuse_pin,
            pkcs8_password=self.pkcs8_password,
            tpm_key_password=self.tpm_key_password,
            no_tpm_key_password=self.no_tpm_key_password,
            tpm_tcti=self.tpm_tcti,
        )
        identity, key = load_identity(
            self.certificate, self.private_key, self.intermediates, options
        )

        def fetch() -> Credentials:
            return create_session(params, identity, key, transport=transport)

        return fetch, key


def create_session(
    *,
    certificate: str | None = None,
    private_key: str | None = None,
    intermediates: str | None = None,
    trust_anchor_arn: str,
    profile_arn: str,
    role_arn: str,
    region: str | None = None,
    endpoint: str | None = None,
    session_duration: int = 3600,
    role_session_name: str | None = None,
    pkcs11_lib: str | None = None,
    reuse_pin: bool = False,
    pkcs8_password: str | None = None,
    tpm_key_password: str | None = None,
    no_tpm_key_password: bool = False,
    tpm_tcti: str | None = None,
    no_verify_ssl: bool = False,
) -> Credentials:
    """Open the key, call CreateSession once, close the key: ``credential-process`` in Python."""
    settings = Settings(**locals())
    fetch, key = settings.open()
    with key:
        return fetch()


def boto3_session(
    *,
    certificate: str | None = None,
    private_key: str | None = None,
    intermediates: str | None = None,
    trust_anchor_arn: str,
    profile_arn: str,
    role_arn: str,
    region: str | None = None,
    endpoint: str | None = None,
    session_duration: int = 3600,
    role_session_name: str | None = None,
    pkcs11_lib: str | None = None,
    reuse_pin: bool = False,
    pkcs8_password: str | None = None,
    tpm_key_password: str | None = None,
    no_tpm_key_password: bool = False,
    tpm_tcti: str | None = None,
    no_verify_ssl: bool = False,
    refresh_margin: int = int(REFRESH_MARGIN.total_seconds()),
    region_name: str | None = None,
) -> boto3.Session:
    """A ``boto3.Session`` whose credentials come from Roles Anywhere and refresh themselves.

    The first credentials are fetched now, so mistakes surface here. New ones are fetched when
    fewer than ``refresh_margin`` seconds remain. The key stays open until the session is
    garbage-collected. ``region_name`` is the session's default region for AWS clients
    (``region`` is the Roles Anywhere signing region).
    """
    options = dict(locals())
    margin = timedelta(seconds=options.pop("refresh_margin"))
    region_name = options.pop("region_name")
    settings = Settings(**options)
    if margin <= timedelta(0):
        raise ConfigError("refresh_margin must be a positive number of seconds")
    with needs_extra("boto3"):
        from . import _botocore
    fetch, key = settings.open()
    try:
        first = fetch()
    except BaseException:
        key.close()
        raise
    keeper = CredentialKeeper(fetch, initial=first, refresh_margin=margin)
    session = _botocore.refreshing_session(keeper, region_name=region_name)
    weakref.finalize(session, key.close)
    return session
