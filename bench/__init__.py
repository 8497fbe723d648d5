"""Benchmarks (issue 16): each prints its same-run baseline, ratios and verdict lines."""

from __future__ import annotations

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
    """The children of the gunicorn master ``master``."""
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
