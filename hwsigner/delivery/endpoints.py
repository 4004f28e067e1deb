"""A local credentials endpoint: EC2 instance metadata (IMDSv2) and the ECS container form.

    >>> keeper = CredentialKeeper(session.fetch, initial=session.fetch())  # doctest: +SKIP
    >>> server = CredentialServer.listen(keeper, "my-role", port=9911, auth_token=token)
    ...                                                               # doctest: +SKIP
    >>> server.serve_forever()                                        # doctest: +SKIP

Then ``AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9911/`` (instance metadata), or
``AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9911/credentials`` with
``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (container). Packets carry the hop limit as IP TTL, as
EC2's metadata service does. Routes (both trailing-slash forms of each work):

- ``PUT /latest/api/token``: a session token; ``X-aws-ec2-metadata-token-ttl-seconds`` 1-21600
  (default 21600); a request with ``X-Forwarded-For`` is refused (400).
- ``GET /latest/meta-data/iam/security-credentials/``: the role name; ``.../<role>``: the
  credentials as JSON. Both need a valid ``X-aws-ec2-metadata-token`` (401 otherwise). IMDSv2
  is served by loopback listeners only (``imds=False``: 404).
- ``GET /credentials`` (the first role) and ``GET /role/NAME`` (each role): the container form;
  ``Authorization`` must equal the role's token (constant-time compare; 401 otherwise).
- ``GET /healthz``, ``/readyz``, ``/metrics``: ``health.Health``.

Credentials come from a ``CredentialKeeper``: fresh ones are answered on the event loop from
JSON encoded once; otherwise ``get`` runs on a thread (one refresh at a time, the last good
credentials while usable, 500 when none: never empty or expired). Nothing secret is logged.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..credentials import Credentials, format_time
from ..errors import ConfigError, HwSignerError
from .health import Health
from .httpd import Answer, HttpServer, Request, set_hop_limit, text
from .keeper import CredentialKeeper

log = logging.getLogger("hwsigner")

HOST = "127.0.0.1"
TOKEN_PATH = "/latest/api/token"  # noqa: S105 - a path, not a secret
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials"
CONTAINER_PATH = "/credentials"
TOKEN_HEADER = "X-aws-ec2-metadata-token"  # noqa: S105 - a header name
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
MIN_TTL, MAX_TTL = 1, 21600
MAX_TOKENS = 256
BACKLOG = 1024
METHODS = frozenset(("GET", "PUT", "POST", "DELETE", "PATCH"))
ROUTES = {
    **dict.fromkeys((TOKEN_PATH, TOKEN_PATH + "/"), "token"),
    **dict.fromkeys((CREDENTIALS_PATH, CREDENTIALS_PATH + "/"), "role-list"),
    **dict.fromkeys((CONTAINER_PATH, CONTAINER_PATH + "/"), "container"),
    **{path: path[1:] for path in ("/healthz", "/readyz", "/metrics")},
}
ROLE_PREFIX = CREDENTIALS_PATH + "/"
NAMED_ROLE_PREFIX = "/role/"  # the container route of each role: /role/NAME
TTL_BYTES = TTL_HEADER.encode()
JSON = b"Content-Type: application/json\r\n"
NOT_FOUND = text(404, "not found")
NOT_ALLOWED = text(405, "method not allowed")


class TokenStore:
    """IMDSv2 session tokens and when each expires (monotonic clock); at most ``MAX_TOKENS``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, ttl: int) -> str:
        token = secrets.token_urlsafe(48)
        now = self._clock()
        with self._lock:
            for old in [t for t, end in self._tokens.items() if end <= now]:
                del self._tokens[old]
            if len(self._tokens) >= MAX_TOKENS:
                del self._tokens[min(self._tokens, key=self._tokens.__getitem__)]
            self._tokens[token] = now + ttl
        return token

    def remaining(self, token: str | None) -> int | None:
        """Whole seconds the token has left, or None when it is unknown or expired."""
        if not token:
            return None
        with self._lock:
            end = self._tokens.get(token)
        left = None if end is None else end - self._clock()
        return int(left) if left is not None and left > 0 else None


@dataclass(frozen=True, slots=True)
class ServedRole:
    """One role a server answers for: its name in paths, its keeper, its container token."""

    name: str
    keeper: CredentialKeeper
    role_arn: str | None = None
    auth_token: str | None = None


class Endpoints:
    """The route of a listener: IMDSv2 (``imds``: loopback only) and ``/credentials`` for the
    first role, ``/role/NAME`` for each, and the health routes."""

    def __init__(
        self,
        roles: list[ServedRole],
        tokens: TokenStore | None = None,
        *,
        imds: bool = True,
        health: Health | None = None,
    ) -> None:
        self.roles = {role.name: role for role in roles}
        self.first = roles[0]
        self.tokens = tokens or TokenStore()
        self.imds = imds
        self.health = health or Health([(role.name, role.keeper) for role in roles])
        self._encoded: dict[str, tuple[Credentials, Any, bytes, bytes]] = {}

    def __call__(self, request: Request) -> Answer | Awaitable[Answer]:
        if request.method not in METHODS:
            return text(501, "unsupported method")
        kind = self._route(request.path)
        if kind is None:
            return NOT_FOUND
        if request.method != ("PUT" if kind == "token" else "GET"):
            return NOT_ALLOWED
        if kind == "container":
            return self._container(request, self.first)
        if kind.startswith("role:"):
            role = self.roles.get(kind[5:])
            return NOT_FOUND if role is None else self._container(request, role)
        if kind in ("healthz", "readyz", "metrics"):
            answer: Answer = getattr(self.health, kind)()
            return answer
        if not self.imds:
            return NOT_FOUND  # IMDSv2 answers on loopback only
        return self._token(request) if kind == "token" else self._imds(request, kind)

    def _route(self, path: str) -> str | None:
        """``token``, ``role-list``, ``container``, a health route, ``imds:NAME``, ``role:NAME``."""
        if path in ROUTES:
            return ROUTES[path]
        for prefix, kind in ((ROLE_PREFIX, "imds:"), (NAMED_ROLE_PREFIX, "role:")):
            if path.startswith(prefix):
                rest = path[len(prefix) :]
                role = rest[:-1] if rest.endswith("/") else rest
                return kind + role if role else None
        return None

    def _token(self, request: Request) -> Answer:
        if request.headers.get("x-forwarded-for") is not None:
            return text(400, "unable to process requests with X-Forwarded-For header")
        ttl_text = request.headers.get(TTL_HEADER.lower(), str(MAX_TTL)).strip()
        ttl = int(ttl_text) if ttl_text.isascii() and ttl_text.isdigit() else 0
        if not MIN_TTL <= ttl <= MAX_TTL:
            return text(400, f"the token TTL must be {MIN_TTL} to {MAX_TTL} seconds")
        token = self.tokens.issue(ttl)
        return text(200, token, b"Content-Type: text/plain\r\n%s: %d\r\n" % (TTL_BYTES, ttl))

    def _imds(self, request: Request, kind: str) -> Answer | Awaitable[Answer]:
        left = self.tokens.remaining(request.headers.get(TOKEN_HEADER.lower()))
        if left is None:
            return text(401, "a valid X-aws-ec2-metadata-token is required")
        ttl = b"%s: %d\r\n" % (TTL_BYTES, left)
        if kind == "role-list":
            return text(200, self.first.name, b"Content-Type: text/plain\r\n" + ttl)
        if kind[5:] != self.first.name:
            return text(404, "no such role", b"Content-Type: text/plain\r\n" + ttl)
        return self._credentials(self.first, JSON + ttl, imds=True)

    def _container(self, request: Request, role: ServedRole) -> Answer | Awaitable[Answer]:
        expected = role.auth_token
        if expected is None:
            return NOT_FOUND
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode("latin-1"), expected.encode()):
            return text(401, "the Authorization header does not hold the token")
        return self._credentials(role, JSON, imds=False)

    def _credentials(
        self, role: ServedRole, headers: bytes, *, imds: bool
    ) -> Answer | Awaitable[Answer]:
        """Fresh credentials are answered at once; otherwise after the keeper, on a thread."""
        fresh = role.keeper.fresh()
        if fresh is not None:
            return Answer(200, self._body(role, fresh, imds=imds), headers)
        return self._after_refresh(role, headers, imds=imds)

    async def _after_refresh(self, role: ServedRole, headers: bytes, *, imds: bool) -> Answer:
        loop = asyncio.get_running_loop()
        try:
            credentials = await loop.run_in_executor(None, role.keeper.get)
        except Exception as exc:  # a HwSignerError is expected; anything else is a bug
            expected = isinstance(exc, HwSignerError)
            level, why = (logging.WARNING, str(exc)) if expected else (logging.ERROR, repr(exc))
            log.log(level, "answering 500: %s", why)
            return text(500, "no valid credentials")
        return Answer(200, self._body(role, credentials, imds=imds), headers)

    def _body(self, role: ServedRole, credentials: Credentials, *, imds: bool) -> bytes:
        """The JSON answers, encoded once per credentials (and when they were obtained)."""
        updated = role.keeper.last_updated
        cached = self._encoded.get(role.name)
        if cached is None or cached[0] is not credentials or cached[1] != updated:
            cached = (credentials, updated, *encode(credentials, updated, role.role_arn))
            self._encoded[role.name] = cached
        return cached[2] if imds else cached[3]


def encode(credentials: Credentials, updated: Any, role_arn: str | None) -> tuple[bytes, bytes]:
    """The IMDS answer and the container answer, as JSON."""
    common = {
        "AccessKeyId": credentials.access_key_id,
        "SecretAccessKey": credentials.secret_access_key,
        "Token": credentials.session_token,
        "Expiration": format_time(credentials.expiration),
    }
    imds = {
        "Code": "Success",
        "LastUpdated": format_time(updated or credentials.expiration),
        "Type": "AWS-HMAC",
        **common,
    }
    container = {**common, "RoleArn": role_arn} if role_arn else common
    return json.dumps(imds).encode(), json.dumps(container).encode()


def listen_tcp(host: str, port: int, hop_limit: int) -> socket.socket:
    """A listening TCP socket on ``host`` (IPv4 or IPv6; IPv6 only for an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        set_hop_limit(sock, hop_limit)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        raise ConfigError(
            f"cannot listen on {where}: {exc.strerror or exc}",
            hint="choose another --port, or stop what listens there",
        ) from None
    return sock


class CredentialServer(HttpServer):
    """``serve``'s server for one role on 127.0.0.1 (``listen``)."""

    @classmethod
    def listen(
        cls,
        keeper: CredentialKeeper,
        role_name: str,
        *,
        port: int = 9911,
        hop_limit: int = 64,
        auth_token: str | None = None,
        role_arn: str | None = None,
    ) -> CredentialServer:
        """Bind and listen; ``port=0`` picks a free port (see ``port``)."""
        endpoints = Endpoints([ServedRole(role_name, keeper, role_arn, auth_token)])
        return cls([(listen_tcp(HOST, port, hop_limit), endpoints)], hop_limit=hop_limit)

    @property
    def port(self) -> int:
        return int(self.listeners[0][0].getsockname()[1])


__all__ = [
    "CredentialServer",
    "Endpoints",
    "ServedRole",
    "TokenStore",
    "listen_tcp",
]
