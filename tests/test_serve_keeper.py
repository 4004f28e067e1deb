"""The refresh policy shared by ``serve``, ``update`` and boto3 sessions, with a clock the test
moves: unit tests of ``CredentialKeeper``, then the real HTTP server and the real emulator."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from hwsigner.credentials import Credentials, parse_time
from hwsigner.delivery.endpoints import CredentialServer
from hwsigner.delivery.keeper import CredentialKeeper
from hwsigner.emulator import TrustAnchors, running
from hwsigner.emulator.server import EmulatorServer
from hwsigner.errors import HwSignerError, ServiceError
from hwsigner.identity import load_identity
from hwsigner.rolesanywhere import request_credentials
from hwsigner.settings import Settings

from .delivery import create_sessions, fail_service
from .helpers import PROFILE_ARN, ROLE_ARN, TRUST_ANCHOR_ARN

START = datetime(2030, 1, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Service:
    """A fetch function: credentials for an hour from the clock's time, or a chosen failure."""

    def __init__(self, clock: Clock, lifetime: timedelta = timedelta(hours=1)) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.failing = False
        self.delay = 0.0

    def __call__(self) -> Credentials:
        self.calls += 1
        time.sleep(self.delay)
        if self.failing:
            raise ServiceError("ServiceUnavailable", "down", status=503)
        expiry = self.clock() + self.lifetime
        return Credentials(f"ASIA{self.calls:04d}", "secret", "token", expiry)


def latest(low: float, high: float) -> float:
    """A jitter that always picks the end of the window."""
    return high


def test_credentials_are_reused_until_their_refresh_point() -> None:
    clock = Clock()
    service = Service(clock)
    keeper = CredentialKeeper(service, clock=clock, jitter=latest)
    first = keeper.get()
    clock.advance(minutes=44, seconds=59)  # the latest point: 15 minutes before expiry
    assert keeper.get() is first
    clock.advance(seconds=2)
    second = keeper.get()
    assert second.access_key_id == "ASIA0002"
    assert service.calls == 2


def test_a_failed_refresh_keeps_the_last_good_credentials_until_near_expiry() -> None:
    clock = Clock()
    service = Service(clock)
    keeper = CredentialKeeper(service, clock=clock)
    good = keeper.get()
    service.failing = True
    clock.advance(minutes=55)
    assert keeper.get() is good
    assert isinstance(keeper.last_error, ServiceError)
    clock.advance(minutes=3, seconds=59)  # 61 seconds left
    assert keeper.get() is good
    clock.advance(seconds=2)  # 59 seconds left: too close to hand out
    with pytest.raises(HwSignerError, match="no valid credentials: ServiceUnavailable"):
        keeper.get()
    service.failing = False
    clock.advance(minutes=1)
    assert keeper.get().access_key_id.startswith("ASIA")
    assert keeper.last_error is None


def test_failed_refreshes_back_off_and_the_pause_is_capped() -> None:
    clock = Clock()
    service = Service(clock)
    keeper = CredentialKeeper(service, clock=clock, jitter=latest)
    keeper.get()
    service.failing = True
    clock.advance(minutes=51)
    pauses = []
    for _ in range(9):
        calls = service.calls
        keeper.get()
        assert service.calls == calls + 1
        pauses.append(keeper.seconds_to_refresh())
        keeper.get()  # within the pause: no new attempt
        assert service.calls == calls + 1
        clock.advance(seconds=pauses[-1])
    assert pauses == [1, 2, 4, 8, 16, 32, 60, 60, 60]


@pytest.mark.parametrize(
    ("lifetime", "earliest", "last"),
    [(3600, 1800, 2700), (43200, 21600, 42300), (1799, 899.5, 899.5), (900, 450, 450)],
)
def test_refresh_points_fall_in_the_window(lifetime: int, earliest: float, last: float) -> None:
    points = []
    for _ in range(200):
        clock = Clock()
        keeper = CredentialKeeper(Service(clock, timedelta(seconds=lifetime)), clock=clock)
        keeper.get()
        points.append(keeper.seconds_to_refresh())
    assert earliest <= min(points) and max(points) <= last
    if earliest < last:
        assert len(set(points)) > 100  # jittered, not one point for the whole fleet


def test_failed_refreshes_back_off_with_jitter() -> None:
    clock = Clock()
    service = Service(clock)
    keeper = CredentialKeeper(service, clock=clock)
    keeper.get()
    service.failing = True
    clock.advance(minutes=46)
    pauses = []
    for _ in range(8):
        keeper.get()
        pauses.append(keeper.seconds_to_refresh())
        clock.advance(seconds=pauses[-1])
    bounds = [1, 2, 4, 8, 16, 32, 60, 60]
    assert all(b / 2 <= p <= b for p, b in zip(pauses, bounds, strict=True)), pauses


def test_nothing_is_served_when_the_first_fetch_fails() -> None:
    clock = Clock()
    service = Service(clock)
    service.failing = True
    keeper = CredentialKeeper(service, clock=clock)
    with pytest.raises(HwSignerError):
        keeper.get()
    assert keeper.current is None


def test_short_lived_credentials_are_not_refreshed_on_every_read() -> None:
    clock = Clock()
    service = Service(clock, lifetime=timedelta(minutes=4))
    keeper = CredentialKeeper(service, clock=clock)
    first = keeper.get()
    clock.advance(minutes=1, seconds=59)
    assert keeper.get() is first  # refreshed at half the lifetime, not at once
    clock.advance(seconds=2)
    assert keeper.get() is not first
    assert service.calls == 2


def test_many_threads_share_one_refresh() -> None:
    clock = Clock()
    service = Service(clock)
    keeper = CredentialKeeper(service, initial=service(), clock=clock)
    service.delay = 0.2
    clock.advance(minutes=55)
    with ThreadPoolExecutor(200) as pool:
        found = list(pool.map(lambda _: keeper.get(), range(200)))
    assert service.calls == 2  # the initial fetch and one refresh
    assert {c.access_key_id for c in found} <= {"ASIA0001", "ASIA0002"}


@pytest.mark.parametrize("start", ["nothing yet", "expired"])
def test_threads_that_must_wait_share_one_refresh(start: str) -> None:
    clock = Clock()
    service = Service(clock)
    initial = service() if start == "expired" else None
    keeper = CredentialKeeper(service, initial=initial, clock=clock)
    clock.advance(hours=2)
    service.delay = 0.2
    with ThreadPoolExecutor(50) as pool:
        found = list(pool.map(lambda _: keeper.get(), range(50)))
    assert len({c.access_key_id for c in found}) == 1
    assert service.calls == (2 if initial else 1)


def test_waiting_threads_share_one_failed_attempt() -> None:
    clock = Clock()
    service = Service(clock)
    service.failing, service.delay = True, 0.2
    keeper = CredentialKeeper(service, clock=clock)
    errors = []

    def read() -> None:
        try:
            keeper.get()
        except HwSignerError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 50
    assert service.calls == 1


# The HTTP server, with the real emulator and a real key, and a clock the test moves


@pytest.fixture(scope="module")
def emulator_server(pki) -> Iterator[EmulatorServer]:
    with running(TrustAnchors.load([str(pki.root_cert)])) as server:
        yield server


class Setup:
    def __init__(self, server: CredentialServer, clock: Clock, url: str) -> None:
        self.server, self.clock, self.emulator_url = server, clock, url
        self.token = self.request("PUT", "/latest/api/token")[1]

    def request(self, method: str, path: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            conn.request(method, path, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, answer.read().decode()
        finally:
            conn.close()

    def read(self) -> tuple[int, str]:
        path = "/latest/meta-data/iam/security-credentials/hwsigner-test"
        return self.request("GET", path, {"X-aws-ec2-metadata-token": self.token})


@pytest.fixture
def setup(pki, emulator_server: EmulatorServer) -> Iterator[Setup]:
    url = f"http://127.0.0.1:{emulator_server.server_address[1]}"
    cert, key_path = pki.new_leaf("ec-p256", "keeper-http")
    identity, key = load_identity(str(cert), str(key_path), str(pki.issuing_cert))
    params = Settings(
        trust_anchor_arn=TRUST_ANCHOR_ARN, profile_arn=PROFILE_ARN, role_arn=ROLE_ARN, endpoint=url
    )
    clock = Clock(datetime.now(timezone.utc))

    def fetch() -> Credentials:
        return request_credentials(params, identity, key, sleep=lambda _: None)

    keeper = CredentialKeeper(fetch, initial=fetch(), clock=clock)
    server = CredentialServer.listen(keeper, "hwsigner-test", port=0, hop_limit=3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Setup(server, clock, url)
    finally:
        server.shutdown()
        server.server_close()
        key.close()
        fail_service(url, count=0)


def test_200_concurrent_reads_when_a_refresh_is_due_cost_one_create_session(
    setup: Setup,
) -> None:
    before = create_sessions(setup.emulator_url)
    setup.clock.advance(minutes=55)  # inside the 10-minute refresh margin
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: setup.read(), range(200)))
    assert [status for status, _ in results] == [200] * 200
    assert create_sessions(setup.emulator_url) - before == 1
    assert len({json.loads(body)["AccessKeyId"] for _, body in results}) <= 2


def test_serves_the_last_good_credentials_then_500(setup: Setup) -> None:
    status, body = setup.read()
    good = json.loads(body)
    fail_service(setup.emulator_url)
    setup.clock.advance(minutes=55)
    status, body = setup.read()
    assert status == 200 and json.loads(body) == good
    setup.clock.advance(minutes=4, seconds=10)  # 50 seconds left
    status, body = setup.read()
    assert status == 500
    assert "AccessKeyId" not in body and good["SecretAccessKey"] not in body
    fail_service(setup.emulator_url, count=0)
    setup.clock.advance(seconds=5)
    status, body = setup.read()
    assert status == 200
    fresh = json.loads(body)
    assert fresh["AccessKeyId"] != good["AccessKeyId"]
    assert parse_time(fresh["Expiration"]) > setup.clock()


def test_accepted_connections_carry_the_hop_limit() -> None:
    clock = Clock()
    keeper = CredentialKeeper(Service(clock), clock=clock)
    server = CredentialServer.listen(keeper, "role", port=0, hop_limit=3)
    try:
        listening = server.listeners[0][0]
        assert listening.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 3
        client = socket.create_connection(("127.0.0.1", server.port))
        connection, _ = listening.accept()  # as the event loop accepts
        try:
            assert connection.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 3
        finally:
            connection.close()
            client.close()
    finally:
        server.server_close()
