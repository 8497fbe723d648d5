"""Fixtures that run the service as real processes, the way `make run` does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from emulator.testing import EmulatorHandle
from service.config import PROJECT_ROOT

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveService:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service.cli", *args],
            env=self.env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )

    def create_key(self, role: str = "admin", tenant: str | None = None) -> str:
        args = ["keys", "create", "--name", f"e2e-{role}", "--role", role]
        if tenant:
            args += ["--tenant", tenant]
        return self.cli(*args).stdout.strip()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def emulator_env(emulator: EmulatorHandle) -> dict[str, str]:
    """Point a service process at the emulator: it must never reach for a real Azure host."""
    return {
        "AZURE_AUTHORITY_HOST": emulator.authority,
        "AZURE_RESOURCE_MANAGER": emulator.arm_endpoint,
        "AZURE_LOG_ANALYTICS_ENDPOINT": emulator.logs_endpoint,
        "AZURE_CA_BUNDLE": str(emulator.ca_path),
        "AZURE_MANAGED_IDENTITY": "false",
        "CREDENTIAL_KEYS": Fernet.generate_key().decode(),
    }


def start_service(
    tmp: Path, emulator: EmulatorHandle, extra_env: dict[str, str] | None = None
) -> LiveService:
    """Migrate a fresh SQLite database and start gunicorn on it (as `make run` does)."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'service.db'}",
        "BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        **emulator_env(emulator),
        **(extra_env or {}),
    }
    subprocess.run(
        [sys.executable, "-m", "service.cli", "db-upgrade"],
        env=env,
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    )
    log_path = tmp / "gunicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "--config", "gunicorn.conf.py", "wsgi:app"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    service = LiveService(f"http://127.0.0.1:{port}", env, process, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited early:\n{service.logs()}")
        try:
            if requests.get(service.url + "/readyz", timeout=5).status_code == 200:
                return service
        except requests.RequestException:
            pass  # still booting
        time.sleep(0.2)
    stop_service(service)
    raise RuntimeError(f"gunicorn did not become ready:\n{service.logs()}")


def stop_service(service: LiveService) -> None:
    if service.process.poll() is None:
        service.process.send_signal(signal.SIGTERM)
        try:
            service.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


@pytest.fixture(scope="module")
def live_service(
    tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorHandle
) -> Iterator[LiveService]:
    service = start_service(tmp_path_factory.mktemp("live"), emulator)
    yield service
    stop_service(service)
