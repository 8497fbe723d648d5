"""How soon the service answers /readyz 200 after its process starts, and what the first
seconds after that cost the worker's other requests (issue 16, P4: <= 1 s).

    .venv/bin/python -m bench.readiness [--runs 3] [--postgres DSN] [--docker-cmd]

Each run starts `make run`'s server command (``gunicorn --config gunicorn.conf.py wsgi:app``;
``--docker-cmd`` runs the Dockerfile's CMD the same way, minus the entrypoint's migration) on a
database migrated beforehand (``make run`` and the image's entrypoint migrate before the server
starts too, so the migration is not part of the figure), and polls ``/readyz`` every 5 ms from
the moment the process is spawned: the time to the first 200 is the figure. No reconciler
(``RUN_RECONCILER`` unset): it is a separate process and does not gate readiness.

It then keeps asking ``/healthz`` (every 10 ms, two connections) for ``--after`` seconds: the
slowest answer is the longest any request waited meanwhile, e.g. for a worker still importing
SDKs in the background (the "first-request stall" is measured in isolation by
``bench/sdk_import.py``). It also reads each worker's CPU time (``/proc``) when ready: the CPU
a worker's boot costs, which the machine's load does not change.

Baseline, same run: a bare gunicorn with the same worker class (``service.serving.Worker``) and
worker count serving a trivial WSGI app (this file's ``trivial_app``): what gunicorn and gevent
cost before the service's own start-up. Target: ready <= 1.0 s.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench import proc_cpu_s, service_cli, worker_pids

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGET_S = 1.0


def trivial_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The baseline's application: 200 and two bytes (stdlib only, nothing to import)."""
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 2.0) -> int:
    """Status of one GET on a new connection (0 when nothing answers)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
            return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    except (OSError, ValueError, IndexError):
        return 0


def environment(database_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RUN_RECONCILER"}
    env.update(
        DATABASE_URL=database_url,
        BIND=f"127.0.0.1:{port}",
        LOG_LEVEL="WARNING",
        CREDENTIAL_KEYS=env.get("CREDENTIAL_KEYS") or _fernet_key(),
    )
    return env


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def command(kind: str) -> list[str]:
    if kind == "baseline":
        return [
            str(BIN / "gunicorn"),
            "--worker-class",
            "service.serving.Worker",
            "--workers",
            os.environ.get("GUNICORN_WORKERS", "2"),
            "--no-control-socket",
            # Run from an empty directory: gunicorn would read ./gunicorn.conf.py otherwise.
            "--pythonpath",
            str(ROOT),
            "--error-logfile",
            "/dev/null",
            "bench.readiness:trivial_app",
        ]
    if kind == "docker-cmd":
        import json
        import re

        text = (ROOT / "Dockerfile").read_text()
        cmd: list[str] = json.loads(re.findall(r"^CMD (\[.*\])$", text, re.M)[-1])
        return [str(BIN / cmd[0]) if cmd[0] != "python" else sys.executable, *cmd[1:]]
    return [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "wsgi:app"]


def one_run(kind: str, database_url: str, after_s: float, work: Path) -> dict[str, float]:
    port = free_port()
    env = environment(database_url, port)
    if kind == "baseline":
        env["BIND"] = f"127.0.0.1:{port}"
        env["GUNICORN_CMD_ARGS"] = f"--bind 127.0.0.1:{port}"
    started = time.perf_counter()
    proc = subprocess.Popen(
        command(kind),
        env=env,
        cwd=work if kind == "baseline" else ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    path = "/healthz" if kind == "baseline" else "/readyz"
    try:
        ready = None
        while time.perf_counter() - started < 60:
            if proc.poll() is not None:
                raise RuntimeError(f"{kind}: the server exited with {proc.returncode}")
            if http_get(port, path, timeout=1.0) == 200:
                ready = time.perf_counter() - started
                break
            time.sleep(0.005)
        if ready is None:
            raise RuntimeError(f"{kind}: not ready within 60 s")
        workers = worker_pids(proc.pid)
        boot_cpu = [proc_cpu_s(pid) for pid in workers]
        waits = _probe(port, after_s)
        # Ready means one worker answers; the other may still be booting: when did all answer?
        return {
            "ready_s": ready,
            "worker_boot_cpu_s": statistics.mean(boot_cpu) if boot_cpu else 0.0,
            "master_cpu_s": proc_cpu_s(proc.pid),
            "after_max_ms": max(waits) * 1000 if waits else 0.0,
            "after_p99_ms": _pct(waits, 0.99) * 1000 if waits else 0.0,
            "after_failures": float(sum(1 for w in waits if w >= 2.0)),
        }
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _probe(port: int, seconds: float) -> list[float]:
    """Latencies of /healthz asked every 10 ms on two connections for ``seconds``."""
    waits: list[float] = []
    lock = threading.Lock()
    end = time.perf_counter() + seconds

    def loop() -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            ok = http_get(port, "/healthz", timeout=2.0) == 200
            took = time.perf_counter() - t0 if ok else 2.0
            with lock:
                waits.append(took)
            time.sleep(0.01)

    threads = [threading.Thread(target=loop) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return waits


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def migrated_database(postgres: str | None, work: Path) -> tuple[str, str | None]:
    """A database at head: SQLite in ``work`` (make run's default kind), or a throwaway
    database on the PostgreSQL server ``postgres``. Returns its URL and the name to drop."""
    if postgres:
        import psycopg

        name = f"amlcp_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base = postgres.rpartition("/")[0]
        url = "postgresql+psycopg" + f"{base}/{name}"[len("postgresql") :]
    else:
        name, url = None, f"sqlite:///{work / 'service.db'}"
    service_cli({**os.environ, "DATABASE_URL": url, "CREDENTIAL_KEYS": _fernet_key()}, "db-upgrade")
    return url, name


def drop(postgres: str, name: str) -> None:
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--after", type=float, default=5.0, help="seconds of /healthz probing")
    parser.add_argument("--postgres", metavar="DSN", help="a throwaway database on this server")
    parser.add_argument("--docker-cmd", action="store_true", help="the Dockerfile's CMD instead")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-readiness-"))
    url, name = migrated_database(args.postgres, work)
    kind = "docker-cmd" if args.docker_cmd else "make-run"
    try:
        results: dict[str, list[dict[str, float]]] = {kind: [], "baseline": []}
        for _ in range(args.runs):  # alternate, so both see the same machine
            results["baseline"].append(one_run("baseline", url, args.after, work))
            results[kind].append(one_run(kind, url, args.after, work))
    finally:
        if name and args.postgres:
            drop(args.postgres, name)
    base = statistics.median(r["ready_s"] for r in results["baseline"])
    worst = 0.0
    for label, runs in results.items():
        for i, r in enumerate(runs, 1):
            print(
                f"{label} run {i}: ready {r['ready_s']:.3f} s, worker boot CPU "
                f"{r['worker_boot_cpu_s']:.3f} s, master CPU {r['master_cpu_s']:.3f} s; "
                f"/healthz in the next {args.after:.0f} s: p99 {r['after_p99_ms']:.1f} ms, "
                f"max {r['after_max_ms']:.1f} ms, failures {r['after_failures']:.0f}"
            )
    svc = [r["ready_s"] for r in results[kind]]
    worst = max(svc)
    median = statistics.median(svc)
    cpu = statistics.median(r["worker_boot_cpu_s"] for r in results[kind])
    base_cpu = statistics.median(r["worker_boot_cpu_s"] for r in results["baseline"])
    stall = max(r["after_max_ms"] for r in results[kind])
    print(
        f"readyz: median {median:.3f} s, worst {worst:.3f} s; baseline (bare gunicorn, trivial "
        f"app) {base:.3f} s; ratio {median / base:.2f}x; worker boot CPU {cpu:.3f} s vs "
        f"{base_cpu:.3f} s; longest /healthz wait after ready {stall:.1f} ms"
    )
    verdict = "PASS" if worst <= TARGET_S else "FAIL"
    print(f"ready_s={worst:.3f} target<={TARGET_S} {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
