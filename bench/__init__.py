"""Benchmarks (issue 16): each prints its same-run baseline, ratios and verdict lines."""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path


def verdict(name: str, value: float, target: str, ok: bool) -> None:
    """One ``name=value target... PASS|FAIL`` line: what ``python -m bench`` records."""
    print(f"{name}={value:.3f} target{target} {'PASS' if ok else 'FAIL'}", flush=True)


def service_cli(env: dict[str, str], *args: str) -> str:
    """``python -m service.cli ARGS`` from the checkout with ``env``; its standard output."""
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


# -- a gunicorn service's worker processes (from /proc) ---------------------------------------
def worker_pids(master: int) -> list[int]:
    """The children of process ``master`` (a gunicorn master's workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1]) == master:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def proc_cpu_s(pid: int) -> float:
    """utime + stime of one process, in seconds (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(pids: list[int]) -> float:
    return sum(proc_cpu_s(pid) for pid in pids)


def postgres_server_pid(dsn: str) -> int | None:
    """The postmaster of the PostgreSQL server at ``dsn`` when it runs on this machine and its
    processes can be read (not another machine's, nor another user's /proc); else None. Read
    it before a run: at its end the run's own connections may hold every slot."""
    import psycopg

    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        master = int(Path(f"/proc/{backend}/stat").read_text().rsplit(") ", 1)[1].split()[1])
        Path(f"/proc/{master}/stat").read_text()
        return master
    except (OSError, IndexError, ValueError, psycopg.Error):
        return None


def postgres_cpu_s(master: int) -> float:
    """CPU seconds the PostgreSQL server whose postmaster is ``master`` has used so far: the
    postmaster's own and its children's, the ended backends included (its cutime/cstime count
    the children it has reaped), the live ones read one by one."""
    fields = Path(f"/proc/{master}/stat").read_text().rsplit(") ", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    live = 0.0
    for pid in worker_pids(master):
        try:
            live += proc_cpu_s(pid)
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile: its CPU is in the postmaster's children's by now
    return ticks / os.sysconf("SC_CLK_TCK") + live


def settle(pids: list[int], quiet_s: float = 1.0, limit_s: float = 60.0) -> None:
    """Wait until the workers are idle, their start behind them: each imports the Azure SDKs in
    the background once it serves, ``AMLCP_WARM_IMPORTS_DELAY_S`` (1 s) after its start
    (gunicorn.conf.py). That is start-up, not the steady state a benchmark measures; checked
    only for quiet right after ``/readyz``, the import began a moment later, inside the timed
    part (a page of bench/fleet_queries.py waited ~130 ms for it)."""
    time.sleep(float(os.environ.get("AMLCP_WARM_IMPORTS_DELAY_S", "1")) + 0.5)
    end = time.perf_counter() + limit_s
    before = cpu_of(pids)
    while time.perf_counter() < end:
        time.sleep(quiet_s)
        now = cpu_of(pids)
        if now - before < 0.05 * quiet_s * len(pids):
            return
        before = now


# -- the benchmark client's own garbage collector --------------------------------------------
def freeze_heap() -> None:
    """Move what this (client) process holds so far out of the garbage collector, as every
    gunicorn worker does after its start (``gunicorn.conf.py``: ``freeze_heap``).

    A client that seeded a database or imported the service and the SDKs holds ~100,000 or more
    long-lived objects; unfrozen, each full collection walked them all again, 40-70 ms
    (measured with ``gc.callbacks`` in bench/fleet_queries.py), inside whichever request was
    being timed: a pause of the load generator, not of the service. Call it after the warm-up,
    before the timed part; ``FULL_COLLECTIONS`` counts those that still happen.
    """
    gc.collect()
    gc.freeze()


class FullCollections:
    """Counts this process's full (generation 2) collections and their time."""

    def __init__(self) -> None:
        self.count, self.seconds, self._t0 = 0, 0.0, 0.0
        gc.callbacks.append(self._on)

    def _on(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.count += 1
            self.seconds += time.perf_counter() - self._t0


FULL_COLLECTIONS = FullCollections()
