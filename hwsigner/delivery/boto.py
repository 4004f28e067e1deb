"""The bridge to botocore, through its public credential-provider interface only.

    >>> from datetime import datetime, timedelta, timezone
    >>> from hwsigner.credentials import Credentials
    >>> from hwsigner.delivery.keeper import CredentialKeeper
    >>> def fetch():                                   # Session.fetch in real use
    ...     expiry = datetime.now(timezone.utc) + timedelta(hours=1)
    ...     return Credentials("ASIAEXAMPLE0000000", "secret", "token", expiry)
    >>> session = refreshing_session(CredentialKeeper(fetch), region_name="us-east-1")
    >>> session.get_credentials().get_frozen_credentials().access_key
    'ASIAEXAMPLE0000000'

A ``botocore.session.Session`` gets a ``CredentialResolver`` holding one provider (registered as
its ``credential_provider`` component); the provider returns ``RefreshableCredentials`` made by
``create_from_metadata``, whose refresh callback asks the ``CredentialKeeper``. botocore
decides when to ask (15 minutes before expiry, blocking from 10 minutes); the keeper decides
when to call CreateSession, and makes concurrent askers share one call.

Imported only by ``hwsigner.boto3_session`` (``hwsigner.session``): it needs boto3.
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials

from ..credentials import Credentials, format_time
from .keeper import CredentialKeeper

METHOD = "hwsigner-rolesanywhere"


def metadata(credentials: Credentials) -> dict[str, Any]:
    """The dict ``RefreshableCredentials.create_from_metadata`` and its callback exchange."""
    return {
        "access_key": credentials.access_key_id,
        "secret_key": credentials.secret_access_key,
        "token": credentials.session_token,
        "expiry_time": format_time(credentials.expiration),
    }


class RolesAnywhereProvider(CredentialProvider):  # type: ignore[misc]
    """A botocore credential provider backed by a ``CredentialKeeper``."""

    METHOD = METHOD
    CANONICAL_NAME = "custom-hwsigner"

    def __init__(self, keeper: CredentialKeeper) -> None:
        super().__init__()
        self.keeper = keeper

    def load(self) -> RefreshableCredentials:
        return RefreshableCredentials.create_from_metadata(
            metadata=self.refresh(), refresh_using=self.refresh, method=METHOD
        )

    def refresh(self) -> dict[str, Any]:
        return metadata(self.keeper.get())


def refreshing_session(keeper: CredentialKeeper, region_name: str | None = None) -> boto3.Session:
    core = botocore.session.Session()
    core.register_component(
        "credential_provider", CredentialResolver([RolesAnywhereProvider(keeper)])
    )
    return boto3.Session(botocore_session=core, region_name=region_name)


__all__ = ["RolesAnywhereProvider", "refreshing_session"]
