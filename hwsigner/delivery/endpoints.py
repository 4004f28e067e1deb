"""A local credentials endpoint: EC2 instance metadata (IMDSv2) and the ECS container form.

    >>> keeper = CredentialKeeper(session.fetch, initial=session.fetch())  # doctest: +SKIP
    >>> server = CredentialServer.listen(keeper, "my-role", port=9911, auth_token=token)
    ...                                                               # doctest: +SKIP
    >>> server.serve_forever()                                        # doctest: +SKIP

Then ``AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9911/`` points the SDKs' instance
metadata provider here, and ``AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9911/credentials``
with ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` their container provider.

It listens on 127.0.0.1 only, and sets the IP TTL of its packets to the hop limit, as EC2's
metadata service does, so answers die before they can be routed on. Routes:

- ``PUT /latest/api/token``: a session token; ``X-aws-ec2-metadata-token-ttl-seconds`` 1-21600
  (default 21600); a request with ``X-Forwarded-For`` is refused (400).
- ``GET /latest/meta-data/iam/security-credentials/``: the role name.
- ``GET /latest/meta-data/iam/security-credentials/<role>``: the credentials as JSON.
  Both need a valid ``X-aws-ec2-metadata-token`` (401 otherwise); both trailing-slash forms work.
- ``GET /credentials``: the container form; ``Authorization`` must equal the configured token.

Credentials come from a ``CredentialKeeper``: one refresh at a time, the last good credentials
while valid, and 500 when there are none - never empty or expired credentials. Tokens and
secrets are never logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .._safe import one_line, read_user_file
from ..credentials import format_time
from ..errors import ConfigError, HwSignerError
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


class CredentialServer(ThreadingHTTPServer):
    """The HTTP server; ``listen`` binds it to 127.0.0.1."""

    daemon_threads = True
    block_on_close = False  # idle keep-alive clients must not delay a shutdown
    request_queue_size = 128

    def __init__(
        self,
        keeper: CredentialKeeper,
        role_name: str,
        *,
        port: int = 9911,
        hop_limit: int = 64,
        auth_token: str | None = None,
        role_arn: str | None = None,
    ) -> None:
        super().__init__((HOST, port), RequestHandler, bind_and_activate=False)
        self.keeper = keeper
        self.role_name = role_name
        self.role_arn = role_arn
        self.hop_limit = hop_limit
        self.auth_token = auth_token
        self.tokens = TokenStore()

    @classmethod
    def listen(cls, keeper: CredentialKeeper, role_name: str, **settings: Any) -> CredentialServer:
        """Bind and listen; ``port=0`` picks a free port (see ``port``)."""
        server = cls(keeper, role_name, **settings)
        try:
            server.socket.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, server.hop_limit)
            server.server_bind()
            server.server_activate()
        except OSError as exc:
            server.server_close()
            raise ConfigError(
                f"cannot listen on {HOST}:{server.server_address[1]}: {exc.strerror or exc}",
                hint="choose another --port, or stop what listens there",
            ) from None
        except BaseException:
            server.server_close()
            raise
        return server

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One debug line for a client that went away or stalled; one error line otherwise."""
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("client %s went away: %s", client_address[0], error)
        else:
            log.error("request from %s failed: %r", client_address[0], error)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, self.hop_limit)
        return connection, address


def read_auth_token(path: str) -> str:
    """The container endpoint's token: the file's content exactly, which must be one word of
    visible ASCII with no newline, since clients send the file as it is as a header value
    (botocore refuses a trailing newline: "not a legal header value")."""
    make = """python3 -c 'import secrets; print(secrets.token_hex(32), end="")'"""
    fix = f"write it without a newline: {make} > {path}"
    try:
        token = read_user_file(path, "token", "--auth-token-file", 4096).decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"the token file {path} holds non-ASCII bytes", hint=fix) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read the token file {path}: {exc.strerror or exc}",
            hint="check --auth-token-file",
        ) from None
    if not token:
        raise ConfigError(f"the token file {path} is empty", hint=fix)
    if not all("!" <= c <= "~" for c in token):
        raise ConfigError(
            f"the token file {path} holds whitespace, a newline or a control character,"
            " which AWS SDKs refuse in a header",
            hint=fix,
        )
    return token


class RequestHandler(BaseHTTPRequestHandler):
    server: CredentialServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY a keep-alive client
    # waits for the delayed ACK (40 ms) on every answer.
    disable_nagle_algorithm = True
    server_version = "hwsigner"
    sys_version = ""
    timeout = 30

    def do_PUT(self) -> None:
        self._discard_body()
        if self._route() != "token":
            self._send_route_error()
            return
        if self.headers.get("X-Forwarded-For") is not None:
            self._send(400, "unable to process requests with X-Forwarded-For header")
            return
        ttl_text = self.headers.get(TTL_HEADER, str(MAX_TTL)).strip()
        ttl = int(ttl_text) if ttl_text.isascii() and ttl_text.isdigit() else 0
        if not MIN_TTL <= ttl <= MAX_TTL:
            self._send(400, f"the token TTL must be {MIN_TTL} to {MAX_TTL} seconds")
            return
        token = self.server.tokens.issue(ttl)
        self._send(200, token, {TTL_HEADER: str(ttl)})

    def do_GET(self) -> None:
        self._discard_body()
        route = self._route()
        if route == "container":
            self._container_credentials()
            return
        if route not in ("role-list", "role"):
            self._send_route_error()
            return
        left = self.server.tokens.remaining(self.headers.get(TOKEN_HEADER))
        if left is None:
            self._send(401, "a valid X-aws-ec2-metadata-token is required")
            return
        ttl = {TTL_HEADER: str(left)}
        if route == "role-list":
            self._send(200, self.server.role_name, ttl)
            return
        if self._role_in_path() != self.server.role_name:
            self._send(404, "no such role", ttl)
            return
        body = self._credentials_body(imds=True)
        if body is not None:
            self._send(200, body, {**ttl, "Content-Type": "application/json"})

    def _container_credentials(self) -> None:
        expected = self.server.auth_token
        if expected is None:
            self._send(404, "not found")
            return
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            self._send(401, "the Authorization header does not hold the token")
            return
        body = self._credentials_body(imds=False)
        if body is not None:
            self._send(200, body, {"Content-Type": "application/json"})

    def _credentials_body(self, *, imds: bool) -> str | None:
        """The JSON answer, or None after sending 500 when no valid credentials exist."""
        keeper = self.server.keeper
        try:
            credentials = keeper.get()
        except HwSignerError as exc:
            log.warning("answering 500: %s", exc)
            self._send(500, "no valid credentials", {"Content-Type": "text/plain"})
            return None
        except Exception:
            log.exception("answering 500: unexpected error while refreshing credentials")
            self._send(500, "no valid credentials")
            return None
        data: dict[str, str] = {}
        if imds:
            data["Code"] = "Success"
            data["LastUpdated"] = format_time(keeper.last_updated or credentials.expiration)
            data["Type"] = "AWS-HMAC"
        data["AccessKeyId"] = credentials.access_key_id
        data["SecretAccessKey"] = credentials.secret_access_key
        data["Token"] = credentials.session_token
        data["Expiration"] = format_time(credentials.expiration)
        if not imds and self.server.role_arn:
            data["RoleArn"] = self.server.role_arn
        return json.dumps(data)

    def _route(self) -> str | None:
        path = self.path.split("?", 1)[0]
        if path in (TOKEN_PATH, TOKEN_PATH + "/"):
            return "token"
        if path in (CREDENTIALS_PATH, CREDENTIALS_PATH + "/"):
            return "role-list"
        if path.startswith(CREDENTIALS_PATH + "/") and self._role_in_path():
            return "role"
        if path in (CONTAINER_PATH, CONTAINER_PATH + "/"):
            return "container"
        return None

    def _role_in_path(self) -> str:
        path = self.path.split("?", 1)[0]
        rest = path[len(CREDENTIALS_PATH) + 1 :]
        return rest[:-1] if rest.endswith("/") else rest

    def _send_route_error(self) -> None:
        """404 for an unknown path; 405 for a known path asked with the wrong method."""
        known = self._route() is not None
        self._send(405 if known else 404, "method not allowed" if known else "not found")

    def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        for name, value in {"Content-Type": "text/plain", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _discard_body(self) -> None:
        length = self.headers.get("Content-Length", "0")
        if length.isascii() and length.isdigit() and 0 < int(length) <= 65536:
            self.rfile.read(int(length))
        elif length.strip() not in ("", "0"):
            self.close_connection = True

    def do_POST(self) -> None:
        self._discard_body()
        self._send_route_error()

    do_DELETE = do_PATCH = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Request lines only, at debug level: never headers, where the tokens travel."""
        log.debug("%s %s", self.address_string(), one_line(format % args))


__all__ = ["CredentialServer", "TokenStore", "read_auth_token"]
