"""Ctrl-C stops everything (issue 15 item 1): no process and no listening port 10 s later.

Ctrl-C in a terminal sends SIGINT to the foreground process group, so the tests start `make run`
and `make demo` in a session of their own and signal that whole group, after some traffic (with
connections still open, as a browser or a client pool would leave them). Every process of the
group must be gone, and the port free, within 10 s, every time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from service.config import PROJECT_ROOT
from tests.e2e.conftest import free_port

STOP_WITHIN_S = 10.0
ROUNDS = int(os.environ.get("SHUTDOWN_ROUNDS", "20"))
# A demo takes ~30 s to start (emulator, fleet, seeding): 3 rounds in the suite; the issue's
# 20 with SHUTDOWN_DEMO_ROUNDS=20.
DEMO_ROUNDS = int(os.environ.get("SHUTDOWN_DEMO_ROUNDS", "3"))


def group_members(pgid: int) -> dict[int, str]:
    """Live (non-zombie) processes of process group ``pgid``: pid -> command line."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rpartition(")")[2].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members[int(entry.name)] = cmdline
    return members


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def interrupt_and_wait(process: subprocess.Popen[bytes], port: int) -> tuple[float, dict[int, str]]:
    """SIGINT to the group; (seconds until nothing is left, what is left after the deadline)."""
    pgid = process.pid
    os.killpg(pgid, signal.SIGINT)
    started = time.monotonic()
    while time.monotonic() - started < STOP_WITHIN_S:
        process.poll()  # reap the session leader
        if not group_members(pgid) and not listening(port):
            took = time.monotonic() - started
            process.wait(5)  # gone: collect its status
            return took, {}
        time.sleep(0.1)
    left = group_members(pgid)
    if listening(port):
        left[0] = f"something still listens on port {port}"
    for pid in left:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    process.wait(10)
    return time.monotonic() - started, left


def traffic(url: str, key: str | None, verify: str | bool = True) -> list[object]:
    """A few requests, leaving kept-alive connections and a half-sent request open."""
    kept: list[object] = []
    for _ in range(3):
        s = requests.Session()
        s.trust_env = False
        s.verify = verify
        if key:
            s.headers["Authorization"] = f"Bearer {key}"
        for path in ("/healthz", "/readyz", "/v1/tenants" if key else "/healthz"):
            assert s.get(url + path, timeout=30).status_code == 200
        kept.append(s)  # its connection stays open (keep-alive)
    if url.startswith("http://"):
        host, _, port = url.removeprefix("http://").partition(":")
        half = socket.create_connection((host, int(port)))
        half.sendall(b"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        kept.append(half)
    return kept


def close_all(kept: list[object]) -> None:
    for item in kept:
        item.close()  # type: ignore[attr-defined]


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, verify: str | bool) -> None:
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        try:
            if requests.get(url + "/readyz", timeout=5, verify=verify).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)


def _rounds(
    start: Callable[[int], tuple[subprocess.Popen[bytes], int, list[object]]], rounds: int
) -> None:
    slow: list[str] = []
    for n in range(rounds):
        process, port, kept = start(n)
        try:
            took, left = interrupt_and_wait(process, port)
        finally:
            close_all(kept)
        if left:
            slow.append(f"round {n}: after {took:.1f} s still there: {left}")
    assert slow == []


@pytest.mark.timeout(120 * ROUNDS)
def test_ctrl_c_on_make_run_leaves_nothing(tmp_path: Path) -> None:
    def start(n: int) -> tuple[subprocess.Popen[bytes], int, list[object]]:
        port = free_port()
        workdir = tmp_path / f"run{n}"
        workdir.mkdir()
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{workdir / 'service.db'}",
            "BIND": f"127.0.0.1:{port}",
            "HOME": str(workdir),
            "CREDENTIAL_KEYS": Fernet.generate_key().decode(),
        }
        log = workdir / "run.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["make", "-s", "run"],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process, log, True)
        key = subprocess.run(
            [str(PROJECT_ROOT / ".venv/bin/python"), "-m", "service.cli", "keys", "create",
             "--name", "ctrl-c"],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        return process, port, traffic(url, key)

    _rounds(start, ROUNDS)


@pytest.mark.timeout(300 * DEMO_ROUNDS)
def test_ctrl_c_on_make_demo_leaves_nothing(tmp_path: Path) -> None:
    def start(n: int) -> tuple[subprocess.Popen[bytes], int, list[object]]:
        port = free_port()
        workdir = tmp_path / f"demo{n}" / "state"
        workdir.parent.mkdir()
        log = workdir.parent / "demo.out"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["make", "-s", "demo", f"DEMO_DIR={workdir}", f"DEMO_PORT={port}",
                 f"DEMO_EMULATOR_PORT={free_port()}"],
                cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 180
        while not (workdir / "demo.json").exists():
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        info = json.loads((workdir / "demo.json").read_text())
        return process, port, traffic(info["service_url"], info["admin_key"], info["ca_path"])

    _rounds(start, DEMO_ROUNDS)
