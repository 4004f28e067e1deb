"""HTTP(S) for CreateSession: TLS settings, proxies from the environment, timeouts.

    >>> from hwsigner.emulator import TrustAnchors, running
    >>> from hwsigner.sigv4x509 import Request
    >>> transport = HttpTransport.from_env({})  # reads AWS_CA_BUNDLE, HTTPS_PROXY, NO_PROXY
    >>> with running(TrustAnchors(())) as server:            # any HTTP endpoint will do
    ...     response = transport(Request("GET", server.url + "/_emulator/stats", (), b""))
    >>> response.status, response.headers["content-type"]
    (200, 'application/json')

Headers go out exactly as signed: ``Host`` is the signed one, never rebuilt. One attempt has
one total deadline (``total_timeout``, 30 s) on top of the per-read timeout, so an endpoint that
drips a byte at a time cannot hold the caller; an answer is read up to ``MAX_RESPONSE`` bytes,
and a malformed one (bad status line, bad chunking) is a ``NetworkError``.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from ._safe import one_line
from .errors import ConfigError, NetworkError
from .sigv4x509 import Request

USER_AGENT = "hwsigner"
MAX_RESPONSE = 1 << 20


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]  # names lower-cased
    body: bytes


@dataclass(frozen=True, slots=True)
class HttpTransport:
    """One connection per request (CreateSession is rare); settings fixed at construction."""

    verify: bool = True
    ca_bundle: str | None = None
    proxies: Mapping[str, str] | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 30.0  # one attempt, from connecting to the last byte of the answer

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, verify: bool = True) -> HttpTransport:
        """``AWS_CA_BUNDLE`` for TLS, ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` for proxies."""
        return cls(
            verify=verify, ca_bundle=env.get("AWS_CA_BUNDLE") or None, proxies=proxies_from(env)
        )

    def __call__(self, request: Request) -> Response:
        url = check_endpoint(request.url)
        deadline = time.monotonic() + self.total_timeout
        conn = self._connection(url.scheme, url.hostname or "", url.port)
        target = url.path + (f"?{url.query}" if url.query else "")
        if conn.host != url.hostname and url.scheme == "http":
            target = request.url  # a plain-HTTP proxy takes the absolute form
        where = one_line(f"{url.scheme}://{url.netloc}")
        raw: socket.socket | None = None
        try:
            conn.timeout = min(self.connect_timeout, self.total_timeout)
            conn.connect()
            if conn.sock is not None:
                raw = conn.sock
                conn.sock = DeadlineSocket(raw, deadline, self.read_timeout)
            headers = dict(request.headers)
            headers.setdefault("User-Agent", USER_AGENT)
            conn.request(request.method, target, body=request.body, headers=headers)
            answer = conn.getresponse()
            body = answer.read(MAX_RESPONSE)
            names = {k.lower(): v for k, v in answer.getheaders()}
            return Response(answer.status, names, body)
        except ssl.SSLError as exc:
            raise NetworkError(
                f"TLS with {where} failed: {one_line(str(exc.reason or exc))}",
                hint="set AWS_CA_BUNDLE to the CA that issued the endpoint's certificate",
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise NetworkError(
                f"cannot reach {where}: {_reason(exc)}",
                hint="check --endpoint, the network and any proxy (HTTPS_PROXY, NO_PROXY)",
            ) from None
        except ValueError:  # http.client on a negative chunk size, and the like
            raise NetworkError(
                f"{where} sent a malformed HTTP answer",
                hint="check --endpoint: it should be IAM Roles Anywhere",
            ) from None
        finally:
            conn.close()
            if raw is not None:
                raw.close()

    def _connection(self, scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
        if scheme not in ("http", "https"):
            raise ConfigError(f"unsupported endpoint scheme {scheme!r}", hint="use https://")
        proxy = self._proxy_for(scheme, host)
        timeout = self.connect_timeout
        if scheme == "https":
            context = self._tls_context()
            if proxy:
                conn = http.client.HTTPSConnection(
                    proxy.hostname or "", proxy.port, timeout=timeout, context=context
                )
                conn.set_tunnel(host, port)
                return conn
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        if proxy:
            return http.client.HTTPConnection(proxy.hostname or "", proxy.port, timeout=timeout)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _proxy_for(self, scheme: str, host: str) -> SplitResult | None:
        proxies = self.proxies or {}
        if scheme not in proxies or bypasses_proxy(host, proxies.get("no", "")):
            return None
        proxy = proxies[scheme]
        return urlsplit(proxy if "://" in proxy else f"http://{proxy}")

    def _tls_context(self) -> ssl.SSLContext:
        if not self.verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        try:
            return ssl.create_default_context(cafile=self.ca_bundle)
        except (OSError, ssl.SSLError):
            raise ConfigError(
                f"cannot read the CA bundle {self.ca_bundle}", hint="check AWS_CA_BUNDLE"
            ) from None


def check_endpoint(url: str) -> SplitResult:
    """``url`` split, if it is one this transport can use; ConfigError in one line if not."""
    shown = one_line(url.split("?")[0], 120)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"the endpoint {shown} is malformed: {exc}", hint=ENDPOINT_HINT) from None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"unsupported endpoint scheme in {shown}", hint="use https://")
    if not host or port == 0 or not all(c.isascii() and c.isprintable() and c != " " for c in host):
        raise ConfigError(f"the endpoint {shown} has no usable host", hint=ENDPOINT_HINT)
    return parts


ENDPOINT_HINT = "give --endpoint as https://HOST[:PORT]"


class DeadlineSocket:
    """A connected socket whose reads and writes all end by one ``deadline`` (monotonic)."""

    def __init__(self, sock: socket.socket, deadline: float, read_timeout: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._read_timeout = read_timeout

    def _arm(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no complete answer within the deadline")
        self._sock.settimeout(min(left, self._read_timeout))

    def sendall(self, data: bytes) -> None:
        self._arm()
        self._sock.sendall(data)

    def recv_into(self, buffer: memoryview) -> int:
        self._arm()
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        return io.BufferedReader(_Reader(self))

    def close(self) -> None:
        """Nothing: http.client closes its connection as soon as it sees ``Connection: close``,
        before the body is read; the transport closes the real socket once the answer is in."""


class _Reader(io.RawIOBase):
    def __init__(self, sock: DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._sock.recv_into(buffer)


def proxies_from(env: Mapping[str, str]) -> dict[str, str]:
    """``https``, ``http`` and ``no`` proxy settings; the lower-case variable wins, as in curl."""
    found = {}
    for scheme in ("https", "http", "no"):
        value = env.get(f"{scheme}_proxy") or env.get(f"{scheme.upper()}_PROXY")
        if value:
            found[scheme] = value
    return found


def bypasses_proxy(host: str, no_proxy: str) -> bool:
    """``NO_PROXY``: ``*``, or hosts and domain suffixes (``.example.com``, ``example.com``)."""
    host = host.lower().rstrip(".")
    for entry in no_proxy.replace(" ", "").lower().split(","):
        entry = entry.rstrip(".").split(":")[0]
        if entry == "*" or (
            entry and (host == entry.lstrip(".") or host.endswith("." + entry.lstrip(".")))
        ):
            return True
    return False


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return one_line(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)


__all__ = [
    "DeadlineSocket", "HttpTransport", "Response", "bypasses_proxy", "check_endpoint",
    "proxies_from",
]  # fmt: skip
