"""The log adapter's azure-core transport on urllib3 (``service/adapters/http_transport.py``).

Through azure-core's own ``PipelineClient`` and bearer-token policy, against the emulator over
HTTPS (and a CONNECT proxy of the test's own): answers read whole or streamed, connections kept
or given up, and every failure raised as the azure-core error ``RequestsTransport`` raised.
"""

from __future__ import annotations

import base64
import json
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

import certifi
import pytest
from azure.core import PipelineClient
from azure.core.exceptions import (
    ServiceRequestError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
    StreamConsumedError,
)
from azure.core.pipeline.policies import BearerTokenCredentialPolicy
from azure.core.rest import HttpRequest

from emulator.telemetry import large_table
from emulator.testing import EmulatorHandle, Sandbox
from service.adapters.http_transport import Urllib3Transport

BODY = json.dumps({"query": "AppTraces"}).encode()


@pytest.fixture
def sandbox(emulator: EmulatorHandle) -> Sandbox:
    """A workspace of its own whose AppTraces answer is a few kilobytes."""
    box = emulator.sandbox()
    emulator.state.telemetry.add_workspace(
        box.log_analytics_workspace_id, {"AppTraces": large_table(5_000)}
    )
    return box


def _client(emulator: EmulatorHandle, sandbox: Sandbox, **options: Any) -> PipelineClient[Any, Any]:
    options.setdefault("verify", str(emulator.ca_path))
    options.setdefault("block_size", 64 * 1024)
    transport = Urllib3Transport(connection_timeout=5, **options)
    policy = BearerTokenCredentialPolicy(
        sandbox.credential(), "https://api.loganalytics.io/.default"
    )
    return PipelineClient(base_url=emulator.url, policies=[policy], transport=transport)


def _query(emulator: EmulatorHandle, sandbox: Sandbox) -> HttpRequest:
    url = f"{emulator.logs_endpoint}/workspaces/{sandbox.log_analytics_workspace_id}/query"
    return HttpRequest("POST", url, content=BODY, headers={"Content-Type": "application/json"})


def test_an_answer_is_read_whole(emulator: EmulatorHandle, sandbox: Sandbox) -> None:
    with _client(emulator, sandbox) as client:
        answers = [client.send_request(_query(emulator, sandbox)) for _ in range(2)]
    for answer in answers:
        assert answer.status_code == 200, answer.text()
        assert answer.reason == "OK"
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.content_type == answer.headers["Content-Type"]
        assert answer.is_closed
        assert answer.is_stream_consumed
        assert [t["name"] for t in answer.json()["tables"]] == ["PrimaryResult"]
        assert json.loads(answer.text()) == answer.json()
        assert answer.read() == answer.content  # read again: the same bytes
        assert answer.url.endswith("/query")


def test_a_streamed_answer_comes_in_blocks_of_the_transports_size(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    with _client(emulator, sandbox, block_size=100) as client:
        whole = client.send_request(_query(emulator, sandbox)).content
        streamed = client.send_request(_query(emulator, sandbox), stream=True)
        assert not streamed.is_stream_consumed
        sizes, parts = [], []
        for part in streamed.iter_bytes():
            sizes.append(len(part))
            parts.append(part)
        assert streamed.is_closed
        assert streamed.is_stream_consumed
        assert len(b"".join(parts)) == len(whole) > 300
        assert set(sizes[:-1]) == {100}
        with pytest.raises(StreamConsumedError):
            next(iter(streamed.iter_bytes()))


def test_an_unreachable_or_untrusted_endpoint_fails_before_the_request_is_sent(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with _client(emulator, sandbox) as client:
        nowhere = HttpRequest("POST", f"https://127.0.0.1:{port}/v1/x/query", content=BODY)
        with pytest.raises(ServiceRequestError):
            client.send_request(nowhere)
    with _client(emulator, sandbox, verify=certifi.where()) as client:
        with pytest.raises(ServiceRequestError) as raised:
            client.send_request(_query(emulator, sandbox))
        assert "certificate" in str(raised.value).lower()


def test_a_dropped_or_slow_answer_fails_after_the_request_was_sent(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    with _client(emulator, sandbox) as client:
        assert client.send_request(_query(emulator, sandbox)).status_code == 200
        emulator.add_fault("drop", "la.", count=1, tenant_id=sandbox.tenant_id)
        with pytest.raises(ServiceResponseError):
            client.send_request(_query(emulator, sandbox))
        emulator.add_fault("latency", "la.", latency_s=1.5, count=1, tenant_id=sandbox.tenant_id)
        with pytest.raises(ServiceResponseTimeoutError):
            client.send_request(_query(emulator, sandbox), read_timeout=0.3)
        # and the pool recovers: the next request gets a connection that works
        assert client.send_request(_query(emulator, sandbox)).status_code == 200


@pytest.fixture
def connect_proxy() -> Iterator[tuple[str, list[str]]]:
    """An HTTP CONNECT proxy on a free port: its URL and the targets it was asked for."""
    server = socket.create_server(("127.0.0.1", 0))
    targets: list[str] = []

    def tunnel(client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            auth = [
                v
                for k, _, v in (h.partition(": ") for h in lines[1:])
                if k.lower() == "proxy-authorization"
            ]
            targets.append(f"{method} {target}" + (f" {auth[0]}" if auth else ""))
            host, port = target.rsplit(":", 1)
            with socket.create_connection((host, int(port))) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                pair = {client: upstream, upstream: client}
                while True:
                    ready, _, _ = select.select(list(pair), [], [], 5)
                    if not ready:
                        return
                    for sock in ready:
                        data = sock.recv(65536)
                        if not data:
                            return
                        pair[sock].sendall(data)

    def accept() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=tunnel, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", targets
    finally:
        server.close()


def test_requests_go_through_a_configured_proxy_on_kept_connections(
    emulator: EmulatorHandle, sandbox: Sandbox, connect_proxy: tuple[str, list[str]]
) -> None:
    """Each CONNECT the proxy sees is a new connection: one serves every answer read to its
    end, whole or streamed; an answer left part-read closes its own (its unread bytes must not
    reach the next request), and the next request opens another."""
    proxy, tunnels = connect_proxy
    host = emulator.url.split("://", 1)[1].rstrip("/")
    with _client(emulator, sandbox, proxy=proxy, block_size=1024) as client:
        assert client.send_request(_query(emulator, sandbox)).status_code == 200
        streamed = client.send_request(_query(emulator, sandbox), stream=True)
        assert b"".join(streamed.iter_bytes())
        assert client.send_request(_query(emulator, sandbox)).status_code == 200
        assert tunnels == [f"CONNECT {host}"]

        cut = client.send_request(_query(emulator, sandbox), stream=True)
        next(iter(cut.iter_bytes()))
        cut.close()
        again = client.send_request(_query(emulator, sandbox))
        assert again.status_code == 200
        assert again.json()["tables"]
        assert tunnels == [f"CONNECT {host}"] * 2


def test_credentials_in_the_proxy_url_are_sent_to_the_proxy(
    emulator: EmulatorHandle, sandbox: Sandbox, connect_proxy: tuple[str, list[str]]
) -> None:
    """``HTTPS_PROXY=http://user:pass@host`` works as it did through requests: urllib3 alone
    would connect without them."""
    proxy, tunnels = connect_proxy
    with_credentials = proxy.replace("http://", "http://ops:p%40ss@")
    with _client(emulator, sandbox, proxy=with_credentials) as client:
        assert client.send_request(_query(emulator, sandbox)).status_code == 200
    host = emulator.url.split("://", 1)[1].rstrip("/")
    assert tunnels == [f"CONNECT {host} Basic {base64.b64encode(b'ops:p@ss').decode()}"]
