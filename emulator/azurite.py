"""Azurite's blob service (Microsoft's storage emulator, npm package `azurite`) as a subprocess.

The project installs it under tools/azurite (``npm ci``, pinned by package-lock.json; the Makefile
does it). ``start_azurite`` runs ``azurite-blob`` on a free loopback port with
``--skipApiVersionCheck`` (azure-storage-blob may send an API version newer than Azurite knows)
and in-memory persistence, and waits until it answers. Azurite's well-known development account
(``devstoreaccount1``; its key is public, documented by Microsoft) is the account.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same for every installation), not a secret.
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def unavailable_reason() -> str | None:
    """Why Azurite cannot start here (None: it can)."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not BINARY.exists():
        return (
            f"{BINARY.relative_to(ROOT)} is missing: run `make azurite` (npm ci in tools/azurite)"
        )
    return None


@dataclass
class Azurite:
    """A running azurite-blob."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def start_azurite(workdir: Path, *, timeout_s: float = 30.0) -> Azurite:
    """Start azurite-blob on a free port (data in memory; its output under `workdir`)."""
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"Azurite unavailable: {reason}")
    workdir.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for _ in range(3):  # a port picked free may be taken before azurite binds it: try again
        port = _free_port()
        log = (workdir / f"azurite-{port}.log").open("wb")
        process = subprocess.Popen(
            [
                str(BINARY),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--silent",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            if _answers(port):
                return Azurite(port, process)
            time.sleep(0.05)
        Azurite(port, process).stop()
        last_error = (workdir / f"azurite-{port}.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"Azurite did not start: {last_error}")


@contextlib.contextmanager
def running_azurite(workdir: Path) -> Iterator[Azurite]:
    azurite = start_azurite(workdir)
    try:
        yield azurite
    finally:
        azurite.stop()
