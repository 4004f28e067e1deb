"""The SigV4-X509 signer against the official helper's captures and the SigV4 rules."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hwsigner.identity import Identity
from hwsigner.keys.file import FileKey
from hwsigner.sigv4x509 import (
    Request,
    canonical_headers,
    canonical_query,
    canonical_request,
    sign,
    string_to_sign,
)
from hwsigner.x509certs import read_certificates

from .helpers import VECTORS

needs_vectors = pytest.mark.skipif(
    not VECTORS.is_dir(),
    reason=(
        "third-party captures not present (../shared/vectors):"
        " the byte-for-byte check against AWS's helper is skipped; the signer is still"
        " checked by the emulator and cryptography"
    ),
)


def read_capture(name: str) -> tuple[str, dict[str, str], bytes]:
    """A captured request: its path with query, its headers, its body."""
    head, body = (VECTORS / name).read_bytes().split(b"\r\n\r\n", 1)
    request_line, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return request_line.split()[1], headers, body


def capture_time(headers: dict[str, str]) -> datetime:
    return datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def resign(capture: str, cert: str, key: str) -> tuple[dict[str, str], dict[str, str], str]:
    path, captured, body = read_capture(capture)
    request = Request(
        "POST",
        "http://127.0.0.1:8080" + path,
        (("Content-Type", "application/json"),),
        body,
    )
    identity = Identity(read_certificates(str(VECTORS / cert))[0])
    key_file = FileKey.load(str(VECTORS / key))
    signed = sign(request, identity.signer(key_file), "us-east-2", capture_time(captured))
    return dict(signed.request.headers), captured, signed.string_to_sign


@needs_vectors
def test_rsa_capture_is_reproduced_byte_for_byte() -> None:
    ours, captured, _ = resign("rsa-2048.request.txt", "alice-cert.crt", "alice-cert.key")
    for name in ("Authorization", "X-Amz-Date", "X-Amz-X509", "Host", "Content-Type"):
        assert ours[name] == captured[name], name
    assert "X-Amz-X509-Chain" not in ours


@needs_vectors
def test_p384_capture_signature_verifies_over_our_string_to_sign() -> None:
    ours, captured, to_sign = resign(
        "ecdsa-p384.request.txt", "alice-cert-ecc.crt", "alice-cert-ecc.key"
    )
    public_key = read_certificates(str(VECTORS / "alice-cert-ecc.crt"))[0].public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    for header in (captured["Authorization"], ours["Authorization"]):
        signature = bytes.fromhex(header.rsplit("Signature=", 1)[1])
        public_key.verify(signature, to_sign.encode(), ec.ECDSA(hashes.SHA256()))
    prefix = "AWS4-X509-ECDSA-SHA256 Credential=3/20240706/us-east-2/rolesanywhere/aws4_request, "
    assert ours["Authorization"].startswith(
        prefix + "SignedHeaders=content-type;host;x-amz-date;x-amz-x509, "
    )


def test_canonical_query_encodes_and_sorts() -> None:
    query = "b=2&a=x%2Fy&a=%41&c=sp%20ace&d=a:b&e=~-_."
    assert canonical_query(query) == "a=A&a=x%2Fy&b=2&c=sp%20ace&d=a%3Ab&e=~-_."


def test_canonical_headers_trim_fold_join_and_skip_unsigned() -> None:
    block, signed = canonical_headers(
        [
            ("X-Multi", " one  two "),
            ("Host", "example.com:8443"),
            ("x-multi", "three"),
            ("User-Agent", "not signed"),
            ("Authorization", "not signed"),
        ]
    )
    assert block == "host:example.com:8443\nx-multi:one two,three\n"
    assert signed == "host;x-multi"


def test_canonical_request_shape() -> None:
    request = Request(
        "post", "https://h.example:444/a%20b/sessions?z=1&y=2", (("Host", "h.example:444"),), b"{}"
    )
    text, signed = canonical_request(request)
    assert text.split("\n") == [
        "POST",
        "/a%2520b/sessions",
        "y=2&z=1",
        "host:h.example:444",
        "",
        "host",
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    ]
    assert signed == "host"


def test_string_to_sign_layout() -> None:
    now = datetime(2024, 7, 6, 11, 38, 59, tzinfo=timezone.utc)
    lines = string_to_sign("AWS4-X509-RSA-SHA256", now, "eu-west-1", "x").split("\n")
    assert lines[:3] == [
        "AWS4-X509-RSA-SHA256",
        "20240706T113859Z",
        "20240706/eu-west-1/rolesanywhere/aws4_request",
    ]
    assert len(lines[3]) == 64


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        string_to_sign("A", datetime(2024, 1, 1), "us-east-1", "x")


@pytest.mark.parametrize("kind", ["rsa-2048", "ec-p256", "ec-p384", "ec-p521"])
def test_chain_header_algorithm_and_decimal_serial(pki, kind: str) -> None:
    cert_path, key_path = pki.new_leaf(kind, f"sig-{kind}")
    leaf = read_certificates(str(cert_path))[0]
    issuing = read_certificates(str(pki.issuing_cert))[0]
    request = Request(
        "POST",
        "https://rolesanywhere.us-east-1.amazonaws.com/sessions?a=b",
        (("Content-Type", "application/json"),),
        b"{}",
    )
    now = datetime.now(timezone.utc)
    signer = Identity(leaf, (issuing,)).signer(FileKey.load(str(key_path)))
    signed = sign(request, signer, "us-east-1", now)
    headers = dict(signed.request.headers)
    algorithm = "AWS4-X509-RSA-SHA256" if kind.startswith("rsa") else "AWS4-X509-ECDSA-SHA256"
    assert headers["Authorization"].startswith(f"{algorithm} Credential={leaf.serial_number}/")
    assert "x-amz-x509-chain" in headers["Authorization"]
    assert headers["X-Amz-X509-Chain"].count(",") == 0
    assert headers["Host"] == "rolesanywhere.us-east-1.amazonaws.com"
    signature = bytes.fromhex(headers["Authorization"].rsplit("Signature=", 1)[1])
    public_key = leaf.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, signed.string_to_sign.encode(), ec.ECDSA(hashes.SHA256()))


def test_reused_parts_follow_the_request_and_identity(pki) -> None:
    """``sign`` works out each request's and identity's fixed parts once; what it signs must
    still be the canonical request of what it sends, whatever was signed before."""
    devices = []
    for kind, with_chain in (("ec-p256", True), ("rsa-2048", False)):
        cert_path, key_path = pki.new_leaf(kind, f"reuse-{kind}")
        chain = read_certificates(str(pki.issuing_cert)) if with_chain else ()
        identity = Identity(read_certificates(str(cert_path))[0], chain)
        devices.append((identity, FileKey.load(str(key_path))))
    json_type = (("Content-Type", "application/json"),)
    requests = [
        Request("POST", f"http://127.0.0.1:{port}/sessions?b=2&a=1", json_type, body)
        for port, body in ((8080, b"{}"), (9090, b'{"durationSeconds":900}'))
    ]
    for second in range(3):
        now = datetime(2024, 7, 6, 12, 0, second, tzinfo=timezone.utc)
        for identity, key in devices:
            for request in requests:
                signed = sign(request, identity.signer(key), "us-east-1", now)
                sent = signed.request.headers
                unsigned = Request(request.method, request.url, sent[:-1], request.body)
                assert sent[-1][0] == "Authorization"
                assert signed.canonical_request == canonical_request(unsigned)[0]
                assert dict(sent)["X-Amz-Date"] == f"20240706T1200{second:02d}Z"
                leaf = identity.certificate.public_bytes(serialization.Encoding.DER)
                assert dict(sent)["X-Amz-X509"] == base64.b64encode(leaf).decode()
                assert ("X-Amz-X509-Chain" in dict(sent)) == bool(identity.chain)
