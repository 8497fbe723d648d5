"""Slow clients vs normal requests (issue 10 item 3), service under gunicorn as `make run` runs it.

Run: `.venv/bin/python -m bench.slow_clients [--levels 0,100,500] [--requests 200]
[--deployment make-run|docker]`.

For each level N (0 first: the same-run baseline) the benchmark holds N slow connections open,
a third of each kind:

- ``headers``: a request line and part of the headers, then one more header byte now and then;
- ``body``: complete headers announcing a 1000-byte body, then a body byte now and then;
- ``short_body``: ``Content-Length: 1048576`` and a 5-byte body, then nothing.

A connection the server closes (its header or body deadline passed) is opened again at once,
so N stay open the whole time, as an attacker would keep them. Meanwhile four clients send
normal requests (``GET /healthz`` and ``GET /v1/tenants`` with a key, alternately); the figure
is their p50/p99 latency, as a ratio to the baseline. A request that gets no answer in 10 s
counts as 10 s and as a failure.

``--deployment docker`` starts gunicorn the way the Dockerfile does (its entrypoint and command,
``BIND=0.0.0.0:<port>``); ``make-run`` the way `make run` does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import requests
from cryptography.fernet import Fernet

from bench import settle, worker_pids

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KINDS = ("headers", "body", "short_body")
NORMAL_TIMEOUT_S = 10.0


def _prefix(kind: str, host: str) -> bytes:
    if kind == "headers":
        return f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode()
    length = 1000 if kind == "body" else 1048576
    head = (
        f"POST /v1/tenants HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    return head.encode() + b'{"sl'


@dataclass
class _Conn:
    sock: socket.socket
    kind: str
    opened: float


@dataclass
class SlowClients:
    """Hold ``n`` slow connections to ``host:port`` open until ``stop()``; re-open closed ones."""

    host: str
    port: int
    n: int
    trickle_s: float = 2.0
    conns: list[_Conn] = field(default_factory=list)
    closed_by_server: int = 0
    refused: int = 0
    lifetimes: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> SlowClients:
        for i in range(self.n):
            self._open(KINDS[i % len(KINDS)])
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)
        self._thread.start()
        return self

    def open_count(self) -> int:
        with self._lock:
            return len(self.conns)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            for c in self.conns:
                c.sock.close()
            self.conns.clear()

    def _open(self, kind: str) -> None:
        sock = socket.socket()
        sock.settimeout(5)
        try:
            sock.connect((self.host, self.port))
            sock.sendall(_prefix(kind, self.host))
        except OSError:
            sock.close()
            self.refused += 1
            return
        sock.setblocking(False)
        with self._lock:
            self.conns.append(_Conn(sock, kind, time.monotonic()))

    def _run(self) -> None:
        last_trickle = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                current = list(self.conns)
            sel = selectors.DefaultSelector()
            for c in current:
                sel.register(c.sock, selectors.EVENT_READ, c)
            events = sel.select(timeout=0.2)
            sel.close()
            gone = []
            for key, _ in events:
                conn: _Conn = key.data
                try:
                    data = conn.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                # An answer (an error status) or EOF: the server gave up on this connection.
                del data
                gone.append(conn)
            now = time.monotonic()
            with self._lock:
                for conn in gone:
                    if conn in self.conns:
                        self.conns.remove(conn)
                        conn.sock.close()
                        self.closed_by_server += 1
                        self.lifetimes.append(now - conn.opened)
            for conn in gone:
                if not self._stop.is_set():
                    self._open(conn.kind)
            if now - last_trickle >= self.trickle_s:
                last_trickle = now
                with self._lock:
                    current = list(self.conns)
                for c in current:
                    if c.kind == "short_body":
                        continue
                    with contextlib.suppress(OSError):  # noticed as closed on the next select
                        c.sock.send(b"x")


@dataclass
class Service:
    url: str
    key: str
    host: str
    port: int
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def service(deployment: str, workdir: Path) -> Iterator[Service]:
    """gunicorn on a fresh SQLite database, started as `make run` or as the Dockerfile does."""
    port = _free_port()
    bind = f"0.0.0.0:{port}" if deployment == "docker" else f"127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{workdir / 'service.db'}",
        "BIND": bind,
        "HOME": str(workdir),
        "LOG_LEVEL": "warning",
        "CREDENTIAL_KEYS": Fernet.generate_key().decode(),
    }
    env.pop("RUN_RECONCILER", None)
    if deployment == "docker":
        command = ["./docker-entrypoint.sh", str(BIN / "gunicorn"), *_docker_args()]
        env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    else:
        subprocess.run(
            [sys.executable, "-m", "service.cli", "db-upgrade"], env=env, cwd=ROOT, check=True
        )
        command = [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "wsgi:app"]
    command += ["--access-logfile", "/dev/null"]
    proc = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.2)
        settle(worker_pids(proc.pid))  # the workers' background SDK import behind them
        key = subprocess.run(
            [sys.executable, "-m", "service.cli", "keys", "create", "--name", "bench"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        yield Service(url, key, "127.0.0.1", port, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _docker_args() -> list[str]:
    """The Dockerfile's CMD after its program name (``gunicorn --config ... wsgi:app``)."""
    import json

    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            args: list[str] = json.loads(line[4:])
            return args[1:]
    raise RuntimeError("no CMD in the Dockerfile")


def normal_latencies(svc: Service, count: int, clients: int = 4) -> tuple[list[float], int]:
    """``count`` normal requests from ``clients`` threads; (latencies in s, failures)."""
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    per_client = count // clients

    def client(index: int) -> None:
        nonlocal failures
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {svc.key}"
        for i in range(per_client):
            path = "/healthz" if (i + index) % 2 == 0 else "/v1/tenants"
            started = time.perf_counter()
            ok = False
            with suppress(requests.RequestException):
                ok = s.get(svc.url + path, timeout=NORMAL_TIMEOUT_S).status_code == 200
            took = time.perf_counter() - started if ok else NORMAL_TIMEOUT_S
            with lock:
                latencies.append(took)
                failures += 0 if ok else 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failures


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="0,100,500")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--deployment", choices=("make-run", "docker"), default="make-run")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    with (
        tempfile.TemporaryDirectory(prefix="amlcp-bench-slow-") as tmp,
        service(args.deployment, Path(tmp)) as svc,
    ):
        normal_latencies(svc, 20)  # warm-up: imports, connections, caches
        baseline = None
        print(f"deployment: {args.deployment}; {args.requests} normal requests per level")
        print(
            f"{'slow held':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'fail':>5} "
            f"{'p99/base':>8} {'closed':>7}"
        )
        for level in levels:
            slow = SlowClients(svc.host, svc.port, level).start()
            time.sleep(2 if level else 0)  # let the connections settle into their slow state
            held = slow.open_count()
            latencies, failures = normal_latencies(svc, args.requests)
            held = min(held, slow.open_count())
            slow.stop()
            p50, p99 = p(latencies, 0.5), p(latencies, 0.99)
            baseline = baseline or p99
            print(
                f"{held:>9} {p50 * 1000:>8.1f} {p99 * 1000:>8.1f} {max(latencies) * 1000:>8.1f} "
                f"{failures:>5} {p99 / baseline:>8.2f} {slow.closed_by_server:>7}"
            )


if __name__ == "__main__":
    main()
