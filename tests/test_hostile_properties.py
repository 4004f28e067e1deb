"""Property-based hostile input (STYLE.md §14): every parser that reads what a user or a peer
wrote either accepts the input or raises one ``HwSignerError`` (``ValueError`` for the
low-level readers) with a printable one-line message, never anything else.

Deterministic: ``derandomize=True`` and no example database, so CI runs the same examples
every time; the example counts keep this module to seconds.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hwsigner._safe import MAX_JSON_DEPTH, load_json, one_line
from hwsigner.credentials import Credentials
from hwsigner.delivery.endpoints import CredentialServer
from hwsigner.devpki import key_pem, new_key
from hwsigner.errors import HwSignerError, NetworkError, ServiceError
from hwsigner.identity import read_certificate_file
from hwsigner.keys.file import FileKey
from hwsigner.keys.pkcs11.uri import Pkcs11Uri
from hwsigner.keys.tpm.keyfile import TpmKeyFile
from hwsigner.rolesanywhere import parse_credentials, service_error
from hwsigner.sigv4x509 import Request
from hwsigner.transport import HttpTransport, Response

from .hostile import HostileServer
from .serving import FakeKeeper, exchange

HOSTILE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
PIN = "ZZSECRETZZ"  # upper case: the generated parts below are lower case, so never collide


def assert_one_printable_line(text: str) -> None:
    assert text and "\n" not in text and "\r" not in text
    assert all(c.isprintable() for c in text), repr(text)


def mutations(good: bytes) -> st.SearchStrategy[bytes]:
    """``good`` with a few bytes replaced, cut short, or with bytes inserted."""

    def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
        buffer = bytearray(data)
        for kind, where, value in edits:
            at = where % (len(buffer) + 1)
            if kind == 0 and at < len(buffer):
                buffer[at] = value
            elif kind == 1:
                del buffer[at:]
            else:
                buffer[at:at] = bytes([value])
        return bytes(buffer)

    edit = st.tuples(st.integers(0, 2), st.integers(0, 1 << 16), st.integers(0, 255))
    return st.lists(edit, min_size=1, max_size=4).map(lambda edits: mutate(good, edits))


# --- the one-line and JSON helpers ---------------------------------------------------------


@HOSTILE
@given(st.text(), st.integers(2, 400))
def test_one_line_is_one_printable_bounded_line(text: str, limit: int) -> None:
    line = one_line(text, limit)
    assert len(line) <= limit
    assert "\n" not in line and all(c.isprintable() for c in line)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@HOSTILE
@given(json_values)
def test_load_json_reads_what_json_writes(value: object) -> None:
    assert load_json(json.dumps(value)) == value


@HOSTILE
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.text(max_size=2000),
        st.integers(MAX_JSON_DEPTH + 1, 100_000).map(lambda n: "[" * n),
        st.integers(MAX_JSON_DEPTH + 1, 5000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    )
)
@example("[" * 5000)
def test_load_json_never_recurses(data: bytes | str) -> None:
    with contextlib.suppress(ValueError):
        load_json(data)


# --- the service's answers -------------------------------------------------------------------


credential_fields = st.fixed_dictionaries(
    {
        "accessKeyId": st.one_of(st.text(), st.just("ASIAEXAMPLEEXAMPLE00"), st.integers()),
        "secretAccessKey": st.one_of(st.text(), st.just("abc/def+ghi=")),
        "sessionToken": st.one_of(st.text(), st.just("token")),
        "expiration": st.one_of(
            st.text(), st.just("2031-01-01T00:00:00Z"), st.just("2029-01-01T00:00:00Z")
        ),
    }
)
answers = st.one_of(
    st.binary(max_size=3000),
    json_values.map(lambda v: json.dumps(v).encode()),
    credential_fields.map(lambda c: json.dumps({"credentialSet": [{"credentials": c}]}).encode()),
)


@HOSTILE
@given(answers)
def test_a_201_gives_checked_credentials_or_one_service_error(body: bytes) -> None:
    try:
        creds = parse_credentials(Response(201, {}, body), NOW)
    except ServiceError as exc:
        assert_one_printable_line(str(exc))
        return
    assert isinstance(creds, Credentials) and creds.expiration > NOW
    for value in (creds.access_key_id, creds.secret_access_key, creds.session_token):
        assert value.isascii() and value.isprintable() and " " not in value


@HOSTILE
@given(st.integers(300, 599), st.text(max_size=300), answers)
def test_an_error_answer_is_one_printable_line(status: int, error_type: str, body: bytes) -> None:
    error = service_error(Response(status, {"x-amzn-errortype": error_type}, body))
    assert_one_printable_line(str(error))
    assert len(str(error)) <= 500


# --- HTTP framing, over a real loopback socket ----------------------------------------------


@pytest.fixture(scope="module")
def raw_server() -> Iterator[HostileServer]:
    with HostileServer(raw=b"") as server:
        yield server


status_lines = st.one_of(
    st.binary(max_size=80),
    st.sampled_from([b"HTTP/1.1 201 Created", b"HTTP/1.0 403 Forbidden", b"HTTP/1.1 99 Odd"]),
)
header_lines = st.lists(
    st.one_of(
        st.binary(max_size=60),
        st.sampled_from([b"Transfer-Encoding: chunked", b"Content-Length: 5"]),
        st.integers(-(1 << 40), 1 << 40).map(lambda n: b"Content-Length: %d" % n),
    ),
    max_size=5,
)
chunks = st.lists(
    st.tuples(st.one_of(st.integers(-(1 << 20), 1 << 20), st.binary(max_size=8)), st.binary()),
    max_size=4,
)


def framed(status: bytes, headers: list[bytes], body: list[tuple[int | bytes, bytes]]) -> bytes:
    sizes = [b"%x" % s if isinstance(s, int) else s for s, _ in body]
    payload = b"".join(
        size + b"\r\n" + data + b"\r\n" for size, (_, data) in zip(sizes, body, strict=True)
    )
    return b"\r\n".join([status, *headers]) + b"\r\n\r\n" + payload


@settings(HOSTILE, max_examples=50)
@given(st.one_of(st.binary(max_size=500), st.builds(framed, status_lines, header_lines, chunks)))
def test_any_http_answer_is_a_response_or_one_network_error(
    raw_server: HostileServer, raw: bytes
) -> None:
    raw_server.raw = raw
    transport = HttpTransport(total_timeout=5)
    try:
        transport(Request("POST", f"{raw_server.url}/sessions", (), b"{}"))
    except NetworkError as exc:
        assert_one_printable_line(str(exc))


# --- pkcs11: URIs ----------------------------------------------------------------------------

names = st.sampled_from(
    ["token", "object", "id", "type", "slot-id", "serial", "module-path", "pin-source", "x-a"]
)
parts = st.text(alphabet="abcdef%0123;&=?:/ ", max_size=12)


@HOSTILE
@given(st.lists(st.tuples(st.one_of(names, parts), parts), max_size=5), parts, st.booleans())
def test_a_uri_is_parsed_or_refused_without_its_pin(
    attributes: list[tuple[str, str]], tail: str, in_query: bool
) -> None:
    path = ";".join(f"{name}={value}" for name, value in attributes)
    pin = f"pin-value={PIN}"
    text = f"pkcs11:{path}?{pin}&{tail}" if in_query else f"pkcs11:{path};{pin};{tail}"
    try:
        uri = Pkcs11Uri.parse(text)
    except HwSignerError as exc:
        assert PIN not in f"{exc} {exc.hint}"
        assert_one_printable_line(str(exc))
        return
    assert PIN not in repr(uri) and PIN not in str(uri)


@HOSTILE
@given(
    st.sampled_from(["PKCS11:", "pkcs11;", " pkcs11:", "pkcs:", "Pkcs11:", "pkcs11 :", "pkcs11"]),
    parts,
)
def test_a_mistyped_uri_as_a_file_never_shows_its_pin(
    tmp_path_factory: pytest.TempPathFactory, scheme: str, rest: str
) -> None:
    ref = f"{scheme}token={rest}?pin-value={PIN}"
    with pytest.raises(HwSignerError) as caught:
        FileKey.load(ref)
    assert PIN not in f"{caught.value} {caught.value.hint}"
    assert "pkcs11:" in str(caught.value.hint)


# --- key, certificate and TSS2 files ----------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def no_password_prompt() -> Iterator[None]:
    """A mutated file that looks encrypted must not wait for a password on a terminal."""
    saved = os.environ.get("HWSIGNER_PKCS8_PASSWORD")
    os.environ["HWSIGNER_PKCS8_PASSWORD"] = "not-the-password"
    yield
    if saved is None:
        del os.environ["HWSIGNER_PKCS8_PASSWORD"]
    else:
        os.environ["HWSIGNER_PKCS8_PASSWORD"] = saved


GOOD_KEY = key_pem(new_key("ec-p256"))


def write(directory: Path, data: bytes) -> str:
    path = directory / "input"
    path.write_bytes(data)
    return str(path)


@HOSTILE
@given(st.one_of(st.binary(max_size=600), mutations(GOOD_KEY)))
def test_a_key_file_is_loaded_or_refused_in_one_line(tmp_path: Path, data: bytes) -> None:
    try:
        FileKey.load(write(tmp_path, data))
    except HwSignerError as exc:
        assert_one_printable_line(str(exc))


@pytest.fixture(scope="module")
def good_certificate(pki) -> bytes:
    cert, _ = pki.new_leaf("ec-p256", "properties", by_root=True)
    return cert.read_bytes()


@HOSTILE
@given(data=st.data())
def test_a_certificate_file_is_read_or_refused_in_one_line(
    tmp_path: Path, good_certificate: bytes, data: st.DataObject
) -> None:
    der = base64.b64decode(b"".join(good_certificate.splitlines()[1:-1]))
    content = data.draw(
        st.one_of(st.binary(max_size=600), mutations(good_certificate), mutations(der))
    )
    try:
        read_certificate_file(write(tmp_path, content))
    except HwSignerError as exc:
        assert_one_printable_line(str(exc))


GOOD_TSS2 = TpmKeyFile(0x81000001, b"\x00\x04pub!", b"\x00\x05priv!", empty_auth=True).to_pem()


@HOSTILE
@given(st.one_of(st.binary(max_size=600), mutations(GOOD_TSS2)))
def test_a_tss2_pem_is_read_or_refused_in_one_line(data: bytes) -> None:
    try:
        TpmKeyFile.from_pem(data, "device.tss2")
    except HwSignerError as exc:
        assert_one_printable_line(str(exc))


# --- serve's request parsing -----------------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Iterator[CredentialServer]:
    server = CredentialServer.listen(FakeKeeper(), "role", port=0, auth_token="t" * 32)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# http.server decodes headers as Latin-1: these are every character a header value can hold
header_values = st.text(
    alphabet=st.characters(max_codepoint=255, blacklist_characters="\r\n"), max_size=12
)


@HOSTILE
@given(
    st.sampled_from(["PUT", "GET", "POST"]),
    st.sampled_from(["/latest/api/token", "/credentials", "/latest/meta-data/iam/x", "/"]),
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "X-aws-ec2-metadata-token-ttl-seconds",
                    "Content-Length",
                    "Authorization",
                    "X-aws-ec2-metadata-token",
                    "X-Forwarded-For",
                ]
            ),
            header_values,
        ),
        max_size=3,
    ),
)
def test_serve_answers_every_request_it_can_parse(
    served: CredentialServer, method: str, path: str, headers: list[tuple[str, str]]
) -> None:
    lines = [f"{method} {path} HTTP/1.1", "Host: x", *(f"{n}: {v}" for n, v in headers)]
    answer = exchange(served.port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    assert answer.startswith(b"HTTP/1.1 "), answer


@HOSTILE
@given(st.binary(max_size=300))
def test_serve_survives_any_bytes(
    served: CredentialServer, caplog: pytest.LogCaptureFixture, raw: bytes
) -> None:
    with caplog.at_level(logging.DEBUG, logger="hwsigner"):
        exchange(served.port, raw)  # any answer (http.server answers HTTP/0.9 in kind), or none
    assert all(r.levelno <= logging.DEBUG for r in caplog.records), caplog.text
    for record in caplog.records:
        assert_one_printable_line(record.getMessage())
    assert exchange(served.port, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404")
