"""HTTP(S) for CreateSession: TLS settings, proxies from the environment, timeouts.

    >>> transport = HttpTransport.from_env({"AWS_CA_BUNDLE": "/etc/ssl/corp.pem"})  # doctest: +SKIP
    >>> transport(request).status                                     # doctest: +SKIP
    201

Headers go out exactly as signed: ``Host`` is the signed one, never rebuilt.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

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

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, verify: bool = True) -> HttpTransport:
        """``AWS_CA_BUNDLE`` for TLS, ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` for proxies."""
        return cls(
            verify=verify, ca_bundle=env.get("AWS_CA_BUNDLE") or None, proxies=proxies_from(env)
        )

    def __call__(self, request: Request) -> Response:
        url = urlsplit(request.url)
        conn = self._connection(url.scheme, url.hostname or "", url.port)
        target = url.path + (f"?{url.query}" if url.query else "")
        if conn.host != url.hostname and url.scheme == "http":
            target = request.url  # a plain-HTTP proxy takes the absolute form
        try:
            conn.connect()
            if conn.sock is not None:
                conn.sock.settimeout(self.read_timeout)
            headers = dict(request.headers)
            headers.setdefault("User-Agent", USER_AGENT)
            conn.request(request.method, target, body=request.body, headers=headers)
            answer = conn.getresponse()
            body = answer.read(MAX_RESPONSE)
            names = {k.lower(): v for k, v in answer.getheaders()}
            return Response(answer.status, names, body)
        except ssl.SSLError as exc:
            raise NetworkError(
                f"TLS with {url.netloc} failed: {exc.reason or exc}",
                hint="set AWS_CA_BUNDLE to the CA that issued the endpoint's certificate",
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise NetworkError(
                f"cannot reach {url.scheme}://{url.netloc}: {_reason(exc)}",
                hint="check --endpoint, the network and any proxy (HTTPS_PROXY, NO_PROXY)",
            ) from None
        finally:
            conn.close()

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
    if isinstance(exc, socket.timeout):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
