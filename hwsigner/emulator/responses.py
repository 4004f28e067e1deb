"""What the emulator answers: a CreateSession credential set with fresh random credentials.

    >>> body = create_session_body(grant, now)                         # doctest: +SKIP
    >>> body["credentialSet"][0]["credentials"]["accessKeyId"][:4]      # doctest: +SKIP
    'ASIA'

The shape is the service's (HTTP 201): ``{"credentialSet": [{"credentials": {...},
"assumedRoleUser": {...}, "roleArn", "sourceIdentity", "packedPolicySize"}], "subjectArn"}``.
The role session is named ``roleSessionName`` or, as the service does by default, the
certificate's serial number in hex. Credentials expire ``durationSeconds`` after the emulator's
clock, and never after the certificate does.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
import uuid
from datetime import datetime, timedelta
from typing import Any

from cryptography.x509.oid import NameOID

from ..credentials import format_time
from .verify import Grant

KEY_ID_ALPHABET = string.ascii_uppercase + "234567"
SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"
TOKEN_BYTES = 420  # 560 base64 characters, about the size of a real session token


def create_session_body(
    grant: Grant, now: datetime, expires_in: int | None = None
) -> dict[str, Any]:
    """The 201 body; ``expires_in`` (seconds, a test hook) replaces the requested duration."""
    session = grant.session
    cert = grant.certificate
    lifetime = timedelta(seconds=session.duration if expires_in is None else expires_in)
    expiration = min(now + lifetime, cert.not_valid_after_utc)
    session_name = session.role_session_name or format(cert.serial_number, "x")
    role_name = session.role.resource.rsplit("/", 1)[-1]
    role_id = "AROA" + _stable_id(session.role_arn, 17)
    return {
        "credentialSet": [
            {
                "credentials": {
                    "accessKeyId": "ASIA" + _random(KEY_ID_ALPHABET, 16),
                    "secretAccessKey": _random(SECRET_ALPHABET, 40),
                    "sessionToken": base64.b64encode(secrets.token_bytes(TOKEN_BYTES)).decode(),
                    "expiration": format_time(expiration),
                },
                "assumedRoleUser": {
                    "arn": f"arn:{session.role.partition}:sts::{session.role.account}:"
                    f"assumed-role/{role_name}/{session_name}",
                    "assumedRoleId": f"{role_id}:{session_name}",
                },
                "roleArn": session.role_arn,
                "sourceIdentity": source_identity(grant),
                "packedPolicySize": 0,
            }
        ],
        "subjectArn": subject_arn(grant),
    }


def source_identity(grant: Grant) -> str:
    """``CN=<the certificate subject's common name>``, empty when it has none."""
    names = grant.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"CN={names[0].value!s}" if names else ""


def subject_arn(grant: Grant) -> str:
    """A stable subject ARN per certificate subject and issuer, in the trust anchor's account."""
    anchor = grant.session.trust_anchor
    cert = grant.certificate
    key = f"{cert.subject.rfc4514_string()}|{cert.issuer.rfc4514_string()}"
    subject_id = uuid.uuid5(uuid.NAMESPACE_URL, key)
    prefix = f"arn:{anchor.partition}:rolesanywhere:{anchor.region}:{anchor.account}"
    return f"{prefix}:subject/{subject_id}"


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _stable_id(text: str, length: int) -> str:
    digest = base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()
    return digest[:length]
