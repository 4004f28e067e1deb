"""The emulator's routes, independent of HTTP plumbing: a received request in, a reply out.

    >>> emulator = Emulator(TrustAnchors(()))                  # trusts nothing, refuses all
    >>> emulator.handle(Received("GET", "/_emulator/stats", (), b"")).status
    200

Routes: ``POST /sessions`` (CreateSession) and the test hooks under ``/_emulator/``:
``GET stats`` (how many CreateSession calls were answered, rejected, failed on purpose),
``GET sessions`` (one entry per CreateSession, oldest first: the certificate, the principal
tags, the decision and its reason),
``POST fail`` (``{"status": 503, "count": K}``: answer the next K CreateSession calls with
that status; -1 for ever, 0 to stop), ``POST settings`` (``{"expiresIn": N}``: credentials
expire N seconds after the clock; null to follow ``durationSeconds``) and ``POST reset``.
Anything else is ``ResourceNotFoundException`` (404).

A granted CreateSession is answered in the service's shape (HTTP 201): ``{"credentialSet":
[{"credentials": {...}, "assumedRoleUser": {...}, "roleArn", "sourceIdentity",
"packedPolicySize"}], "subjectArn"}`` with fresh random credentials. The role session is named
``roleSessionName`` or, as the service does by default, the certificate's serial number in hex.
Credentials expire ``durationSeconds`` after the emulator's clock, never after the certificate.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import string
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .._safe import load_json
from ..credentials import format_time, utcnow
from .certs import TrustAnchors
from .decide import decide, refused_record
from .model import Model
from .params import Rejection, bad_request, error_type_for, not_found
from .verify import Grant, Received, verify_create_session

log = logging.getLogger("hwsigner")

JSON = "application/json"
KEY_ID_ALPHABET = string.ascii_uppercase + "234567"
SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"
TOKEN_BYTES = 420  # 560 base64 characters, about the size of a real session token
REASON_HEADER = "x-hwsigner-emulator-reason"
MAX_SESSIONS = 1000  # the oldest entries of GET /_emulator/sessions go first


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, data: object, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
        body = json.dumps(data, separators=(",", ":")).encode()
        return cls(status, body, (("Content-Type", JSON), *headers))

    @classmethod
    def error(cls, rejection: Rejection) -> Reply:
        """AWS's error form: the type in ``x-amzn-ErrorType``, ``{"message": ...}`` as the body;
        the precise reason, on one line, in ``x-hwsigner-emulator-reason``."""
        reason = " ".join(rejection.reason.encode("ascii", "replace").decode().split())
        return cls.json(
            rejection.status,
            {"message": rejection.detail},
            (("x-amzn-ErrorType", rejection.error_type), (REASON_HEADER, reason[:1024])),
        )


@dataclass
class Failure:
    """A planned failure: the next ``count`` CreateSession calls get this answer (-1: all)."""

    status: int
    error_type: str
    message: str
    count: int


@dataclass
class State:
    """What the test hooks read and change; guarded by the emulator's lock."""

    counts: dict[str, int] = field(
        default_factory=lambda: {"createSession": 0, "rejected": 0, "failedOnPurpose": 0}
    )
    last: dict[str, Any] | None = None
    failure: Failure | None = None
    expires_in: int | None = None
    sessions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_SESSIONS))


class Emulator:
    """Decides CreateSession requests with ``model`` (or, the short form, ``anchors``: any
    ARNs) at ``clock()``; thread-safe."""

    def __init__(self, model: Model | TrustAnchors, clock: Callable[[], datetime] = utcnow) -> None:
        self.model = model if isinstance(model, Model) else Model.short_form(model)
        self.anchors = self.model.anchors()
        self.clock = clock
        self._lock = threading.Lock()
        self._state = State()

    def handle(self, received: Received) -> Reply:
        path = received.target.partition("?")[0]
        try:
            if path.startswith("/_emulator/"):
                return self._hook(received.method, path, received.body)
            if path != "/sessions" or received.method != "POST":
                raise not_found(f"No resource matches {received.method[:16]} {path[:128]}")
            return self._create_session(received)
        except Rejection as rejection:
            log.debug(
                "%s %s: %d %s: %s (%s)",
                received.method,
                path[:128],
                rejection.status,
                rejection.error_type,
                rejection.detail,
                rejection.reason,
            )
            return Reply.error(rejection)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**self._state.counts, "last": self._state.last}

    def _create_session(self, received: Received) -> Reply:
        with self._lock:
            failure = self._state.failure
            if failure is not None:
                if failure.count > 0:
                    failure.count -= 1
                    if failure.count == 0:
                        self._state.failure = None
                self._state.counts["failedOnPurpose"] += 1
                raise Rejection(failure.status, failure.error_type, failure.message)
            expires_in = self._state.expires_in
        now = self.clock()
        try:
            grant = verify_create_session(received, self.anchors, now)
        except Rejection as rejection:
            self._refused(refused_record(received, rejection))
            raise
        decision = decide(self.model, grant.certificate, grant.chain, grant.session, now)
        if decision.refusal is not None:
            self._refused(decision.record(grant.certificate))
            raise decision.refusal
        with self._lock:
            self._state.sessions.append(decision.record(grant.certificate))
        grant = replace(grant, session=replace(grant.session, duration=decision.duration))
        body = create_session_body(grant, now, expires_in, decision.source_identity)
        credentials = body["credentialSet"][0]["credentials"]
        last = {  # no secrets: the access key id names the credentials, it does not unlock them
            "serialNumber": str(grant.certificate.serial_number),
            "durationSeconds": grant.session.duration,
            "roleSessionName": grant.session.role_session_name,
            "roleArn": grant.session.role_arn,
            "instanceProperties": dict(grant.session.instance_properties),
            "accessKeyId": credentials["accessKeyId"],
            "expiration": credentials["expiration"],
        }
        with self._lock:
            self._state.counts["createSession"] += 1
            self._state.last = last
        log.debug(
            "CreateSession for serial %s: %s until %s",
            last["serialNumber"],
            last["accessKeyId"],
            last["expiration"],
        )
        return Reply.json(201, body)

    def _refused(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._state.counts["rejected"] += 1
            self._state.sessions.append(record)

    def sessions(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._state.sessions)

    def _hook(self, method: str, path: str, body: bytes) -> Reply:
        name = path.removeprefix("/_emulator/")
        if (method, name) == ("GET", "stats"):
            return Reply.json(200, self.stats())
        if (method, name) == ("GET", "sessions"):
            return Reply.json(200, self.sessions())
        if method == "POST" and name in ("fail", "settings", "reset"):
            data = _hook_json(body)
            with self._lock:
                if name == "fail":
                    self._state.failure = planned_failure(data)
                elif name == "settings":
                    self._state.expires_in = _optional_int(data, "expiresIn")
                else:
                    self._state = State()
            return Reply.json(200, {"ok": True})
        raise not_found(f"No test hook {method[:16]} {path[:128]}")


def planned_failure(data: dict[str, Any]) -> Failure | None:
    """``{"status": 503, "count": 1, "errorType"?: ..., "message"?: ...}``; count 0 clears."""
    status = _optional_int(data, "status") or 503
    count = _optional_int(data, "count")
    count = 1 if count is None else count
    if not 400 <= status <= 599 or count < -1:
        raise bad_request("fail needs a status of 400-599 and a count of -1 or more")
    if count == 0:
        return None
    error_type = str(data.get("errorType") or error_type_for(status))
    message = str(data.get("message") or f"Failure injected by the emulator ({status})")
    return Failure(status, error_type, message, count)


def _hook_json(body: bytes) -> dict[str, Any]:
    try:
        data = load_json(body or b"{}")
    except ValueError:
        raise bad_request("A test hook takes a JSON object") from None
    if not isinstance(data, dict):
        raise bad_request("A test hook takes a JSON object")
    return data


def _optional_int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise bad_request(f"{name} must be an integer")
    return value


def create_session_body(
    grant: Grant, now: datetime, expires_in: int | None = None, source_identity: str = ""
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
                "sourceIdentity": source_identity,
                "packedPolicySize": 0,
            }
        ],
        "subjectArn": subject_arn(grant),
    }


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


__all__ = ["Emulator", "Reply", "utcnow"]
