"""Verify a received CreateSession request the way IAM Roles Anywhere does. Pure: no clock, no I/O.

    >>> import tempfile
    >>> from datetime import datetime, timezone
    >>> from urllib.parse import urlencode
    >>> from hwsigner import load_identity
    >>> from hwsigner.devpki import DevPki
    >>> from hwsigner.emulator import TrustAnchors
    >>> from hwsigner.sigv4x509 import Request, sign
    >>> pki, now = DevPki.create(tempfile.mkdtemp()), datetime.now(timezone.utc)
    >>> identity, key = load_identity(*map(str, pki.new_leaf("ec-p256", "dev", by_root=True)))
    >>> ra = "arn:aws:rolesanywhere:us-east-1:111122223333:"
    >>> target = "/sessions?" + urlencode({"profileArn": ra + "profile/p",
    ...     "roleArn": "arn:aws:iam::111122223333:role/r", "trustAnchorArn": ra + "trust-anchor/t"})
    >>> request = Request("POST", "https://rolesanywhere.us-east-1.amazonaws.com" + target,
    ...                   (("Content-Type", "application/json"),), b'{"durationSeconds":900}')
    >>> signed = sign(request, identity.signer(key), "us-east-1", now).request
    >>> received = Received("POST", target, signed.headers, signed.body)
    >>> anchors = TrustAnchors.load([str(pki.root_cert)])
    >>> grant = verify_create_session(received, anchors, now)
    >>> grant.session.duration, grant.certificate == identity.certificate
    (900, True)

A refused request raises ``Rejection`` with the status, AWS error type and message to answer.
The canonical request and string to sign come from ``hwsigner.sigv4x509``, the signer's own
code, so signer and verifier cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .. import sigv4x509
from ..arns import REGION_NAME
from .certs import TrustAnchors, check_leaf
from .params import SessionRequest, access_denied, bad_request, session_request

log = logging.getLogger("hwsigner")

MAX_SKEW = timedelta(minutes=5)
# "Sign at least content-type;host;x-amz-date;x-amz-x509" (+ x-amz-x509-chain when it is sent).
REQUIRED_SIGNED = ("content-type", "host", "x-amz-date", "x-amz-x509")
CHAIN_HEADER = "x-amz-x509-chain"
ALGORITHMS = (sigv4x509.RSA_ALGORITHM, sigv4x509.ECDSA_ALGORITHM, sigv4x509.MLDSA_ALGORITHM)
MLDSA_KEYS = sigv4x509.MLDSA_PUBLIC_KEYS


@dataclass(frozen=True, slots=True)
class Received:
    """A request as it came off the wire: ``target`` is the raw path and query."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.strip().lower() == name]

    def single(self, name: str, label: str) -> str | None:
        """The one value of a header that must not repeat; None when it is absent."""
        found = self.values(name)
        if len(found) > 1:
            raise access_denied(f"The {label} header must be sent once")
        return found[0] if found else None


@dataclass(frozen=True, slots=True)
class Authorization:
    """``ALG Credential=<serial>/<date>/<region>/rolesanywhere/aws4_request, SignedHeaders=<names>,
    Signature=<hex>``."""

    algorithm: str
    serial: str
    scope: tuple[str, str, str, str]  # date, region, service, terminator
    signed_headers: tuple[str, ...]
    signature: str

    @classmethod
    def parse(cls, value: str) -> Authorization:
        algorithm, _, rest = value.strip().partition(" ")
        if algorithm not in ALGORITHMS:
            raise access_denied(f"Unsupported signing algorithm {algorithm[:64]!r}")
        parts: dict[str, str] = {}
        for part in rest.split(","):
            key, _, text = part.strip().partition("=")
            parts[key] = text
        credential = parts.get("Credential", "").split("/")
        signed = parts.get("SignedHeaders", "")
        if len(credential) != 5 or not signed or not parts.get("Signature"):
            raise access_denied(
                "Authorization header requires Credential=<serial>/<scope>, SignedHeaders and "
                "Signature"
            )
        date, region, service, terminator = credential[1:]
        return cls(
            algorithm,
            credential[0],
            (date, region, service, terminator),
            tuple(signed.split(";")),
            parts["Signature"],
        )


@dataclass(frozen=True, slots=True)
class Grant:
    """A request that passed every check: who signed it and what it asks for."""

    certificate: x509.Certificate
    anchor: x509.Certificate
    region: str
    session: SessionRequest
    chain: tuple[x509.Certificate, ...] = ()  # the intermediates as sent


def verify_create_session(received: Received, anchors: TrustAnchors, now: datetime) -> Grant:
    """Check signature, certificate and parameters; return the grant or raise ``Rejection``."""
    header = received.single("authorization", "Authorization")
    if header is None:
        raise access_denied("Missing Authorization header")
    auth = Authorization.parse(header)
    signed_at = parse_amz_date(received.single("x-amz-date", "X-Amz-Date"))
    check_skew(signed_at, now)
    region = check_scope(auth, signed_at)
    check_signed_headers(auth, received)
    leaf = decode_certificate(received.single("x-amz-x509", "X-Amz-X509") or "", "X-Amz-X509")
    chain = decode_chain(received.single(CHAIN_HEADER, "X-Amz-X509-Chain"))
    if auth.serial != str(leaf.serial_number):
        raise access_denied(
            f"Credential serial {auth.serial[:64]!r} is not the X-Amz-X509 certificate's serial "
            "number in decimal"
        )
    try:
        public_key = leaf.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise access_denied("The signing certificate's public key cannot be read") from None
    if not isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, *MLDSA_KEYS)):
        raise access_denied("The signing certificate's key must be RSA, EC or ML-DSA")
    check_algorithm(auth.algorithm, public_key)
    check_signature(received, auth, signed_at, region, public_key)
    check_leaf(leaf, now)
    anchor = anchors.verify_chain(leaf, chain, now)
    session = session_request(received.target, received.body, region)
    return Grant(leaf, anchor, region, session, tuple(chain))


def parse_amz_date(value: str | None) -> datetime:
    if value is None:
        raise access_denied("Missing X-Amz-Date header")
    try:
        return datetime.strptime(value.strip(), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise access_denied(f"X-Amz-Date {value[:32]!r} is not YYYYMMDD'T'HHMMSS'Z'") from None


def check_skew(signed_at: datetime, now: datetime) -> None:
    """A signature is good for five minutes either side of the service's clock."""
    stamp = sigv4x509.amz_date
    if signed_at < now - MAX_SKEW:
        raise access_denied(
            f"Signature expired: {stamp(signed_at)} is now earlier than "
            f"{stamp(now - MAX_SKEW)} ({stamp(now)} - 5 min.)"
        )
    if signed_at > now + MAX_SKEW:
        raise access_denied(
            f"Signature not yet current: {stamp(signed_at)} is still later than "
            f"{stamp(now + MAX_SKEW)} ({stamp(now)} + 5 min.)"
        )


def check_scope(auth: Authorization, signed_at: datetime) -> str:
    """The credential scope: the request's date, a region, this service; returns the region."""
    date, region, service, terminator = auth.scope
    expected = sigv4x509.amz_date(signed_at)[:8]
    if date != expected:
        raise access_denied(
            f"Date in Credential scope does not match YYYYMMDD from X-Amz-Date: "
            f"'{date[:16]}' != '{expected}'"
        )
    if not REGION_NAME.fullmatch(region):
        raise access_denied("Credential should be scoped to a valid region")
    if service != sigv4x509.SERVICE:
        raise access_denied(f"Credential should be scoped to correct service: '{service[:32]}'")
    if terminator != "aws4_request":
        raise access_denied("Credential should be scoped with a valid terminator: 'aws4_request'")
    return region


def check_signed_headers(auth: Authorization, received: Received) -> None:
    names = auth.signed_headers
    if list(names) != sorted(set(names)) or any(name != name.lower() for name in names):
        raise access_denied("SignedHeaders must be lower-case, sorted and without repeats")
    required = REQUIRED_SIGNED + ((CHAIN_HEADER,) if received.values(CHAIN_HEADER) else ())
    missing = [name for name in required if name not in names]
    if missing:
        raise access_denied(f"SignedHeaders must include {', '.join(missing)}")
    sent = {key.strip().lower() for key, _ in received.headers}
    absent = [name for name in names if name not in sent]
    if absent:
        raise access_denied(f"SignedHeaders names headers that were not sent: {', '.join(absent)}")


def decode_certificate(text: str, label: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(base64.b64decode(text.strip(), validate=True))
    except (binascii.Error, ValueError):
        raise access_denied(f"{label} is not a base64 DER X.509 certificate") from None


def decode_chain(value: str | None) -> list[x509.Certificate]:
    """``X-Amz-X509-Chain``: comma-joined base64 DER intermediates, at most five."""
    if value is None:
        return []
    parts = value.split(",")
    if len(parts) > sigv4x509.MAX_CHAIN:
        raise bad_request(
            f"X-Amz-X509-Chain holds {len(parts)} certificates; at most "
            f"{sigv4x509.MAX_CHAIN} are allowed"
        )
    return [decode_certificate(part, "X-Amz-X509-Chain") for part in parts]


def check_algorithm(algorithm: str, public_key: sigv4x509.PublicKey) -> None:
    """The algorithm must be the one for the certificate's key type."""
    expected = sigv4x509.algorithm_for(public_key)
    if algorithm != expected:
        raise access_denied(
            f"Signing algorithm {algorithm} does not match the certificate's key; use {expected}"
        )


def check_signature(
    received: Received,
    auth: Authorization,
    signed_at: datetime,
    region: str,
    public_key: sigv4x509.PublicKey,
) -> None:
    """Rebuild the string to sign with the signer's code and check the signature over it."""
    request = sigv4x509.Request(
        received.method, "http://emulator" + received.target, received.headers, received.body
    )
    canonical, _ = sigv4x509.canonical_request(request, only=auth.signed_headers)
    to_sign = sigv4x509.string_to_sign(auth.algorithm, signed_at, region, canonical)
    try:
        signature = bytes.fromhex(auth.signature)
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, to_sign.encode(), ec.ECDSA(hashes.SHA256()))
        else:  # pure ML-DSA, empty context, over the string to sign itself
            public_key.verify(signature, to_sign.encode())
    except (ValueError, InvalidSignature):
        log.debug(
            "signature check failed; canonical request:\n%s\nstring to sign:\n%s",
            canonical,
            to_sign,
        )
        raise access_denied("Invalid signature") from None


__all__: Sequence[str] = [
    "Authorization",
    "Grant",
    "Received",
    "decode_certificate",
    "verify_create_session",
]
