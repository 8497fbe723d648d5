"""Redis for tests: the machine's shared one (unique key prefixes), or a private server to kill.

The shared Redis (``TEST_REDIS_URL``, default 127.0.0.1:6379) is never stopped by a test; tests
that kill Redis start their own ``redis-server`` on a free port, without persistence.
``REQUIRE_REDIS=1`` (CI) turns "Redis not reachable" from a skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

SHARED_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_REQUIRED = os.environ.get("REQUIRE_REDIS") == "1"


def _unreachable(url: str) -> str | None:
    try:
        redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared Redis; tests keep to their own prefix (see ``redis_prefix``)."""
    reason = _unreachable(SHARED_URL)
    if reason is not None:
        if REDIS_REQUIRED:
            pytest.fail(f"REQUIRE_REDIS=1 but Redis at {SHARED_URL} is not reachable ({reason})")
        pytest.skip(f"Redis at {SHARED_URL} is not reachable ({reason}); .ci/run starts one")
    return SHARED_URL


@pytest.fixture
def redis_prefix() -> str:
    return f"amlcp-test-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateRedis:
    """A redis-server of this test alone: it may be killed and started again on its port."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if REDIS_REQUIRED:
                pytest.fail("REQUIRE_REDIS=1 but redis-server is not installed")
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while _unreachable(self.url) is not None:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"private redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no goodbye to the clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(free_port(), tmp_path)
    server.start()
    yield server
    server.kill()
