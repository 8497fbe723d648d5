"""Scale-out (issue 18): N service instances x M clients, one identity, 50 ms queries.

Run: `.venv/bin/python -m bench.scale_out [--runs 3] [--seconds 5] [--clients 16]`.

The emulator runs in its own process with 50 ms query latency (and its rate limit lifted, so
the concurrency budget is what binds: 5 concurrent / 50 ms = 100 queries/s per identity, the
theoretical maximum). For each set-up, every run registers a new tenant (a new identity) and
sends small typed queries from ``--clients`` threads spread over the instances for
``--seconds``: queries/s answered 200, p50/p99 latency, and the emulator's view of the identity
(peak in flight, peak queued: must be 5 and 0). Baseline in the same run: 5 threads querying
the emulator directly with the identity's token (the best any proxy could reach).

Set-ups: 1 instance without Redis (the host file shares the budget between its 2 workers),
1 instance with Redis, 2 instances with Redis (separate gunicorn masters, one PostgreSQL
database, or one SQLite file when PostgreSQL is not reachable). Redis is a private
redis-server on a free port (no persistence), never the machine's shared one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import requests

from bench import settle, worker_pids
from bench.log_proxy import AUDIENCE, Emulator, emulator, register, service_env

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LATENCY_S = 0.05
THEORETICAL_QPS = 5 / LATENCY_S
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_redis(tmp: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def database(tmp: Path) -> Iterator[str]:
    """A PostgreSQL database when one answers, else a SQLite file (both instances share it)."""
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3, autocommit=True) as conn:
            name = f"amlcp_bench_{uuid.uuid4().hex[:10]}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def instances(
    count: int, emu: Emulator, database_url: str, env_extra: dict[str, str]
) -> Iterator[tuple[list[str], dict[str, str]]]:
    env = service_env(emu, database_url, 2, {
        "LOG_QUERY_COALESCE": "false",  # distinct queries anyway; every one is an Azure call
        # The concurrency budget is what is measured: the rate lifted, over a 2 s window so the
        # window holds about as many sends as Azure's real one (200), not thousands.
        "LOG_QUERY_RATE_LIMIT": "100000",
        "LOG_QUERY_RATE_WINDOW_S": "2",
        "LOG_QUERY_PROCESSES": str(2 * count),
        **env_extra,
    })  # fmt: skip
    run = {"env": env, "cwd": ROOT, "check": True, "capture_output": True, "text": True}
    subprocess.run([sys.executable, "-m", "service.cli", "db-upgrade"], **run)  # type: ignore[call-overload]
    admin = subprocess.run(  # type: ignore[call-overload]
        [sys.executable, "-m", "service.cli", "keys", "create", "--name", "bench", "--role",
         "admin"], **run,
    ).stdout.strip()  # fmt: skip
    procs, urls = [], []
    try:
        for _ in range(count):
            port = free_port()
            procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "gunicorn"),
                        "--config",
                        "gunicorn.conf.py",
                        "--access-logfile",
                        "/dev/null",
                        "wsgi:app",
                    ],
                    env={**env, "BIND": f"127.0.0.1:{port}"},
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            for _ in range(600):
                try:
                    if requests.get(url + "/readyz", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.1)
        # Every worker's background SDK import behind it: start-up, not the measured state.
        settle([pid for proc in procs for pid in worker_pids(proc.pid)])
        yield urls, {"Authorization": f"Bearer {admin}"}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def la_stats(emu: Emulator, tenant_id: str) -> dict[str, Any]:
    stats = requests.get(f"{emu.url}/_admin/stats/log-analytics", timeout=10).json()
    (mine,) = [v for k, v in stats["identities"].items() if k.startswith(tenant_id + "/")]
    return dict(mine)


def load(urls: list[str], path: str, key: str, clients: int, seconds: float) -> dict[str, Any]:
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    other: list[int] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {key}"
        url = urls[i % len(urls)] + path
        n = 0
        while time.monotonic() < stop:
            n += 1
            t = time.perf_counter()
            status = s.post(url, json={"query": f"AppRequests | take {i * 100000 + n}"}).status_code
            with lock:
                if status == 200:
                    latencies.append(time.perf_counter() - t)
                else:
                    other.append(status)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "qps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99": latencies[int(0.99 * (len(latencies) - 1))] * 1000 if latencies else 0.0,
        "not_200": len(other),
    }


def direct(emu: Emulator, seconds: float) -> tuple[float, float]:
    """Baseline: 5 threads straight to the emulator with one identity's token (q/s), and the
    p50 of one client alone (ms)."""
    box = emu.sandbox()
    emu.small_telemetry(box.log_analytics_workspace_id)
    token = box.credential().get_token(AUDIENCE + "/.default").token
    url = f"{emu.logs_endpoint}/workspaces/{box.log_analytics_workspace_id}/query"
    count, stop, lock = [0], time.monotonic() + seconds, threading.Lock()

    def client() -> None:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        while time.monotonic() < stop:
            if s.post(url, json={"query": "AppRequests | take 5"}).status_code == 200:
                with lock:
                    count[0] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    qps = count[0] / (time.monotonic() - started)
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    alone = []
    for _ in range(40):
        t0 = time.perf_counter()
        s.post(url, json={"query": "AppRequests | take 5"})
        alone.append(time.perf_counter() - t0)
    return qps, statistics.median(alone) * 1000


def one_run(
    emu: Emulator, urls: list[str], auth: dict[str, str], clients: int, seconds: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new tenant (a new identity), warmed for a second, then loaded for ``seconds``."""
    box = emu.sandbox()
    emu.small_telemetry(box.log_analytics_workspace_id)
    path = register(urls[0], auth, box)[len(urls[0]) :]
    key = requests.post(
        f"{urls[0]}/v1/api-keys", headers=auth, json={"name": "r", "role": "reader"}
    ).json()["secret"]
    load(urls, path, key, clients, 1.0)  # warm: tokens, connections
    result = load(urls, path, key, clients, seconds)
    result["seq_p50"] = load(urls[:1], path, key, 1, 2.0)["p50"]  # one client: the overhead
    return result, la_stats(emu, box.tenant_id)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name, emulator(Path(tmp_name), "process") as emu:
        tmp = Path(tmp_name)
        emu.limits(latency_s=LATENCY_S, rate_limit=10**9)
        print(f"cores: {os.cpu_count()}; loadavg: {Path('/proc/loadavg').read_text().strip()}")
        print(f"theoretical max {THEORETICAL_QPS:.0f} q/s per identity (5 concurrent / 50 ms)")
        base = [direct(emu, args.seconds) for _ in range(args.runs)]
        direct_qps = statistics.median(q for q, _ in base)
        print(
            "baseline, direct to the emulator: 5 threads "
            f"{[round(q, 1) for q, _ in base]} q/s; one client p50 "
            f"{[round(p, 1) for _, p in base]} ms"
        )
        setups = [
            ("1 instance, no Redis (host file)", 1, False),
            ("1 instance, Redis", 1, True),
            ("2 instances, Redis", 2, True),
        ]
        for index, (name, count, with_redis) in enumerate(setups):
            (tmp / str(index)).mkdir()
            with private_redis(tmp) as redis_url, database(tmp / str(index)) as db_url:
                extra = {"REDIS_URL": redis_url} if with_redis else {}
                with instances(count, emu, db_url, extra) as (urls, auth):
                    for run in range(args.runs):
                        r, la = one_run(emu, urls, auth, args.clients, args.seconds)
                        print(
                            f"{name} x {args.clients} clients, run {run + 1}: "
                            f"{r['qps']:.1f} q/s = {r['qps'] / THEORETICAL_QPS:.2f} of max, "
                            f"{r['qps'] / direct_qps:.2f} of direct; p50 {r['p50']:.1f} ms, "
                            f"p99 {r['p99']:.1f} ms; one client p50 {r['seq_p50']:.1f} ms; "
                            f"non-200: {r['not_200']}; Azure saw peak "
                            f"{la['max_in_flight']} in flight, {la['max_queued']} queued",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
