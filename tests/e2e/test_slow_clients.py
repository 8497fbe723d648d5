"""Slow clients and the server's own answers, against real gunicorn processes (issue 10, 3 and 5).

Each deployment runs as it is documented: `make run` (gunicorn.conf.py on 127.0.0.1) and the
Dockerfile (its entrypoint, command and environment, on 0.0.0.0; no container runtime needed to
check what the image runs).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
import requests

from bench.slow_clients import SlowClients, _prefix
from tests.e2e.deployments import Server, start, stop


@pytest.fixture(scope="module", params=["make-run", "docker"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    srv = start(
        tmp_path_factory.mktemp(request.param),
        request.param,
        # Short deadlines so that the test sees them pass; MAX_BODY_BYTES small for the 413s.
        {"HEADER_TIMEOUT_S": "2", "BODY_TIMEOUT_S": "3", "MAX_BODY_BYTES": "4096"},
    )
    yield srv
    stop(srv)


@pytest.fixture(scope="module", params=["make-run", "docker"])
def patient_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Deadlines far away: every slow connection stays open for the whole test."""
    srv = start(
        tmp_path_factory.mktemp(request.param),
        request.param,
        {"HEADER_TIMEOUT_S": "120", "BODY_TIMEOUT_S": "120"},
    )
    yield srv
    stop(srv)


def _read_all(sock: socket.socket, within_s: float) -> tuple[bytes, float]:
    """Read until the server closes the connection; (data, seconds it took)."""
    started = time.monotonic()
    sock.settimeout(0.5)
    data = b""
    while time.monotonic() - started < within_s:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return data, time.monotonic() - started
        data += chunk
    raise AssertionError(f"the server kept the connection open for {within_s} s: {data[:200]!r}")


def _problem(raw: bytes) -> tuple[int, str, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return status, headers["Content-Type"], json.loads(body)


def test_normal_requests_answer_while_500_slow_connections_are_held(
    patient_server: Server,
) -> None:
    server = patient_server
    slow = SlowClients("127.0.0.1", server.port, 500, trickle_s=0.5).start()
    try:
        assert slow.open_count() == 500
        assert slow.refused == 0
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {server.key}"
        for i in range(30):
            path = "/healthz" if i % 2 else "/v1/tenants"
            assert s.get(server.url + path, timeout=10).status_code == 200
        # They were all still held (none closed by the server) while the requests answered.
        assert slow.open_count() == 500
        assert slow.closed_by_server == 0
    finally:
        slow.stop()


def test_partial_headers_are_dropped_at_the_header_deadline(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(_prefix("headers", "test"))
        for _ in range(3):
            time.sleep(0.5)
            sock.sendall(b"x")  # trickling does not extend the deadline
        data, _ = _read_all(sock, within_s=15)
    assert data == b""


@pytest.mark.parametrize("kind", ["body", "short_body"])
def test_a_body_that_does_not_arrive_gets_408_at_the_body_deadline(
    server: Server, kind: str
) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        payload = _prefix(kind, "test")
        if kind == "short_body":  # 5 bytes of a declared 4096 (the limit: not a 413)
            payload = payload.replace(b"Content-Length: 1048576", b"Content-Length: 4096")
        sock.sendall(payload)
        data, _ = _read_all(sock, within_s=20)
    status, content_type, body = _problem(data)
    assert (status, content_type, body["code"]) == (
        408,
        "application/problem+json",
        "request_timeout",
    )


def test_a_chunked_body_over_max_body_bytes_is_413_not_cut(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"slug": "chunky", "display_name": "'
        for _ in range(10):
            yield b"a" * 1000
        yield b'"}'

    r = requests.post(
        server.url + "/v1/tenants",
        data=chunks(),
        headers={"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 413, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    listed = requests.get(
        server.url + "/v1/tenants", headers={"Authorization": f"Bearer {server.key}"}, timeout=10
    ).json()
    assert all(t["slug"] != "chunky" for t in listed["items"])


def test_expect_100_continue_gets_its_100_before_the_body_is_read(server: Server) -> None:
    body = b'{"slug": "expects-continue", "display_name": "E", "entra_tenant_id": "x"}'
    head = (
        "POST /v1/tenants HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {server.key}\r\nExpect: 100-continue\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head.encode())
        sock.settimeout(10)  # without the 100, the 3 s body deadline answers 408 instead
        interim = sock.recv(25)
        assert interim.startswith(b"HTTP/1.1 100 Continue"), interim
        sock.sendall(body)
        data, _ = _read_all(sock, within_s=10)
    final = (interim + data).split(b"\r\n\r\n", 1)[1]
    assert final.startswith(b"HTTP/1.1 400"), final[:200]  # reached the app: the id is no GUID


_MALFORMED = {
    400: b"GET /v1/tenants HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n",
    414: b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
    431: b"GET /v1/tenants HTTP/1.1\r\nHost: t\r\n"
    + b"".join(b"X-%d: a\r\n" % i for i in range(200))
    + b"\r\n",
}


@pytest.mark.parametrize("status", sorted(_MALFORMED))
def test_gunicorns_own_refusals_are_problem_json(server: Server, status: int) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(_MALFORMED[status])
        data, _ = _read_all(sock, within_s=10)
    got, content_type, body = _problem(data)
    assert (got, content_type, body["status"]) == (status, "application/problem+json", status)
    assert body["code"]
    assert body["request_id"]


@pytest.mark.parametrize("status", [400, 431])
def test_gunicorns_own_refusals_have_azures_shape_under_loganalytics(
    server: Server, status: int
) -> None:
    raw = _MALFORMED[status].replace(b"GET /v1/tenants", b"POST /loganalytics/v1/$batch")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(raw)
        data, _ = _read_all(sock, within_s=10)
    got, content_type, body = _problem(data)
    assert (got, content_type) == (status, "application/json")
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"]
    assert error["message"]
