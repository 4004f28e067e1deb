"""SigV4-X509: AWS Signature Version 4 with an X.509 certificate's private key.

Pure: every function takes what it needs (including ``now``) and reads no clock, file or socket.

    >>> from datetime import datetime, timezone
    >>> scope = credential_scope(datetime(2024, 7, 6, tzinfo=timezone.utc), "us-east-2")
    >>> scope
    '20240706/us-east-2/rolesanywhere/aws4_request'

The steps are the ones AWS documents for SigV4 ("Create a canonical request", "Create a string
to sign", "Calculate the signature"), with two differences of the X.509 variant: the signature is
the certificate key's signature over the string to sign (no HMAC key derivation), and the
``Credential=`` part names the certificate's serial number in decimal.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, rsa
from cryptography.hazmat.primitives.serialization import Encoding

SERVICE = "rolesanywhere"
RSA_ALGORITHM = "AWS4-X509-RSA-SHA256"
ECDSA_ALGORITHM = "AWS4-X509-ECDSA-SHA256"
# Pure ML-DSA (FIPS 204) with an empty context, over the string to sign itself (not a digest).
MLDSA_ALGORITHM = "AWS4-X509-MLDSA"
MAX_CHAIN = 5

# Headers that are never signed: the signature itself, and what proxies and clients rewrite.
UNSIGNED_HEADERS = frozenset({"authorization", "user-agent", "x-amzn-trace-id"})

Headers = Sequence[tuple[str, str]]
CertificateHeaders = tuple[tuple[str, str], ...]
PublicKey = (
    rsa.RSAPublicKey
    | ec.EllipticCurvePublicKey
    | mldsa.MLDSA44PublicKey
    | mldsa.MLDSA65PublicKey
    | mldsa.MLDSA87PublicKey
)
MLDSA_PUBLIC_KEYS = (mldsa.MLDSA44PublicKey, mldsa.MLDSA65PublicKey, mldsa.MLDSA87PublicKey)


class Signer(Protocol):
    """What a request is signed with: ``hwsigner.identity.Identity.signer(key)`` makes one.

    ``algorithm`` follows the key type, ``serial`` is the leaf certificate's serial number,
    ``certificate_headers`` are ``X-Amz-X509`` (and ``X-Amz-X509-Chain``), and ``sign`` returns
    the key's signature over the string to sign in its wire encoding.
    """

    @property
    def algorithm(self) -> str: ...

    @property
    def serial(self) -> int: ...

    @property
    def certificate_headers(self) -> CertificateHeaders: ...

    def sign(self, message: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request before signing: ``headers`` holds everything that will be sent."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def algorithm_for(public_key: PublicKey) -> str:
    """The signing algorithm is chosen by the key type, for every curve and modulus size."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return RSA_ALGORITHM
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return ECDSA_ALGORITHM
    if isinstance(public_key, MLDSA_PUBLIC_KEYS):
        return MLDSA_ALGORITHM
    raise TypeError(f"unsupported key type {type(public_key).__name__}")


@functools.lru_cache(maxsize=8)  # a signature asks three times for the same ``now``
def amz_date(now: datetime) -> str:
    """``X-Amz-Date``: "the date and time in ISO 8601 basic format, YYYYMMDD'T'HHMMSS'Z'"."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    utc = now.astimezone(timezone.utc)  # formatted by hand: strftime takes twice as long
    return f"{utc.year:04}{utc.month:02}{utc.day:02}T{utc.hour:02}{utc.minute:02}{utc.second:02}Z"


def credential_scope(now: datetime, region: str) -> str:
    """The scope: "date/region/service/aws4_request"."""
    return f"{amz_date(now)[:8]}/{region}/{SERVICE}/aws4_request"


def uri_encode(text: str) -> str:
    """SigV4: "URI-encode each byte ... except the unreserved characters A-Z a-z 0-9 - _ . ~"."""
    return quote(text, safe="-_.~")


def canonical_uri(path: str) -> str:
    """SigV4: "the URI-encoded version of the absolute path"; each segment encoded once more."""
    return quote(path or "/", safe="/-_.~")


def canonical_query(query: str) -> str:
    """SigV4: "sort the parameter names by character code point", encode names and values."""
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((uri_encode(unquote(name)), uri_encode(unquote(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


_SPACES = re.compile(r"\s+")


def canonical_headers(
    headers: Iterable[tuple[str, str]], only: Collection[str] | None = None
) -> tuple[str, str]:
    """The canonical header block and the signed-header list.

    "Lowercase the header names, trim leading and trailing spaces from the values, convert
    sequential spaces to a single space", join repeated headers' values with commas, sort by name.
    The signer signs every header but ``UNSIGNED_HEADERS``; a verifier passes ``only``, the
    lower-case names a received request says it signed, and gets exactly those.
    """
    values: dict[str, list[str]] = {}
    for name, value in headers:
        key = name.strip().lower()
        skip = key in UNSIGNED_HEADERS if only is None else key not in only
        if skip:
            continue
        values.setdefault(key, []).append(_SPACES.sub(" ", value.strip()))
    names = sorted(values)
    block = "".join(f"{name}:{','.join(values[name])}\n" for name in names)
    return block, ";".join(names)


def canonical_request(request: Request, only: Collection[str] | None = None) -> tuple[str, str]:
    """The canonical request and its signed headers, from a request that holds every header.

    ``only``: just these headers (a verifier's view of a received request's ``SignedHeaders``).
    """
    url = urlsplit(request.url)
    headers, signed = canonical_headers(request.headers, only)
    text = "\n".join(
        [
            request.method.upper(),
            canonical_uri(url.path),
            canonical_query(url.query),
            headers,
            signed,
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    return text, signed


def string_to_sign(algorithm: str, now: datetime, region: str, canonical: str) -> str:
    """SigV4: "Algorithm \\n RequestDateTime \\n CredentialScope \\n HashedCanonicalRequest"."""
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{algorithm}\n{amz_date(now)}\n{credential_scope(now, region)}\n{digest}"


def authorization_header(
    algorithm: str, serial: int, scope: str, signed_headers: str, signature: bytes
) -> str:
    """``ALG Credential=<serial>/<scope>, SignedHeaders=<names>, Signature=<hex>``."""
    return (
        f"{algorithm} Credential={serial}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature.hex()}"
    )


def host_header(url: str) -> str:
    """``Host`` as the client will send it: with ``:port`` when the URL names one."""
    return urlsplit(url).netloc.rpartition("@")[2]


def x509_headers(
    certificate: x509.Certificate, chain: Sequence[x509.Certificate] = ()
) -> CertificateHeaders:
    """``X-Amz-X509`` (the leaf) and, only when there is a chain, ``X-Amz-X509-Chain``."""
    headers = [("X-Amz-X509", _b64der(certificate))]
    if chain:
        headers.append(("X-Amz-X509-Chain", ",".join(_b64der(cert) for cert in chain)))
    return tuple(headers)


def _b64der(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(Encoding.DER)).decode()


_DATE_SLOT = "\0date\0"  # stands in for the X-Amz-Date value while a request form is made


@dataclass(frozen=True, slots=True)
class RequestForm:
    """A request with every header but its date, and its canonical request cut where the date
    goes: the only part that changes from one signature of the same request to the next."""

    headers_before_date: tuple[tuple[str, str], ...]
    headers_after_date: CertificateHeaders
    canonical_before_date: str
    canonical_after_date: str
    signed_headers: str

    def canonical_request(self, date: str) -> str:
        return f"{self.canonical_before_date}{date}{self.canonical_after_date}"


@functools.lru_cache(maxsize=32)
def request_form(request: Request, certificate_headers: CertificateHeaders) -> RequestForm:
    """The headers to send (``Host`` added, any ``Authorization`` and date dropped) and the
    canonical request around ``X-Amz-Date``; worked out once per request and identity."""
    dropped = ("host", "authorization", "x-amz-date")
    headers = [(n, v) for n, v in request.headers if n.lower() not in dropped]
    headers.append(("Host", host_header(request.url)))
    with_slot = (*headers, ("X-Amz-Date", _DATE_SLOT), *certificate_headers)
    canonical, signed = canonical_request(
        Request(request.method, request.url, with_slot, request.body)
    )
    # A canonical header line is "name:value\n" with no line break in the value, and there is one
    # line per name: this text is found exactly once.
    before, found, after = canonical.partition(f"\nx-amz-date:{_DATE_SLOT}\n")
    if not found:
        raise AssertionError("the canonical request lost its X-Amz-Date line")
    return RequestForm(
        tuple(headers),
        certificate_headers,
        f"{before}\nx-amz-date:",
        f"\n{after}",
        signed,
    )


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A signed request, and the intermediate texts (for ``--debug``; they hold no secret)."""

    request: Request
    canonical_request: str
    string_to_sign: str


def sign(request: Request, signer: Signer, region: str, now: datetime) -> SignedRequest:
    """Add ``Host``, ``X-Amz-Date``, the certificate headers and ``Authorization`` (in place
    of any ``Host``, ``X-Amz-Date`` or ``Authorization`` the request has)."""
    date = amz_date(now)
    form = request_form(request, signer.certificate_headers)
    canonical = form.canonical_request(date)
    algorithm = signer.algorithm
    to_sign = string_to_sign(algorithm, now, region, canonical)
    signature = signer.sign(to_sign.encode())
    auth = authorization_header(
        algorithm,
        signer.serial,
        credential_scope(now, region),
        form.signed_headers,
        signature,
    )
    headers = (
        *form.headers_before_date,
        ("X-Amz-Date", date),
        *form.headers_after_date,
        ("Authorization", auth),
    )
    return SignedRequest(
        Request(request.method, request.url, headers, request.body), canonical, to_sign
    )


__all__ = [
    "MAX_CHAIN", "CertificateHeaders", "PublicKey", "Request", "RequestForm", "SignedRequest",
    "Signer", "algorithm_for", "amz_date", "authorization_header", "canonical_headers",
    "canonical_query", "canonical_request", "canonical_uri", "credential_scope", "host_header",
    "request_form", "sign", "string_to_sign", "uri_encode", "x509_headers",
]  # fmt: skip
