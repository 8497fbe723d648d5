"""Run the benchmarks in sequence and record each run: ``make bench`` / ``python -m bench``.

    .venv/bin/python -m bench                         # every benchmark (not crash_loop)
    .venv/bin/python -m bench readiness sdk_import    # these, in this order
    .venv/bin/python -m bench fleet_queries --passes 1 readiness --runs 1   # with their options
    .venv/bin/python -m bench --list

Each benchmark runs as its own process (``python -m bench.<name>``: each stays runnable on its
own), its output shown as it comes. Before each, the runner reads the date, the load average
(``/proc/loadavg``, what ``uptime`` prints) and the commit (``git rev-parse --short HEAD``, with
``-dirty`` when the tree has uncommitted changes). After each it appends one JSON line to
``var/bench/results.jsonl`` (``--results`` to change): those, the command, the exit status, the
duration, the benchmark's verdict lines (``name=value target... PASS|FAIL``) and its whole
output (``output``: the same-run baselines and figures behind the verdicts), and prints a
markdown table row for ``bench/README.md``. ``crash_loop`` (a correctness loop of many minutes,
not a timing) runs only when named. A benchmark that fails does not stop the others; the exit
status is 1 when any failed or missed its target.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DSN = os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_reachable(dsn: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


def default_args(name: str) -> list[str]:
    """The options ``make bench`` runs a benchmark with (none: its own defaults)."""
    if name == "reconcile_converge":
        args = ["--endpoints", "500", "--online", "500", "--baseline-sample", "10"]
        # One reconciler process is CPU-bound (its CPU ~ the run's wall time): on PostgreSQL,
        # two worker processes, one per core, as a deployment would run them.
        pg = ["--postgres", DEFAULT_DSN, "--workers", "2"]
        return [*args, *pg] if _postgres_reachable(DEFAULT_DSN) else args
    if name == "fleet_queries":
        return ["--postgres", DEFAULT_DSN]
    return []


OUTPUT_LINES = 2000

# In order: the cheap ones first, so a broken set-up shows within seconds.
BENCHMARKS = (
    "sdk_import",
    "readiness",
    "emulator_query",
    "discovery",
    "fleet_queries",
    "log_proxy",
    "scale_out",
    "slow_clients",
    "reconcile_converge",
)
ON_REQUEST = ("crash_loop",)
VERDICT = re.compile(r"^(\S+=\S+)(?: .*)? (PASS|FAIL)\s*$")


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{head}-dirty" if git("status", "--porcelain", "--untracked-files=no") else head


def load_average() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def selection(argv: list[str]) -> list[tuple[str, list[str]]]:
    """``[name [options...]]...`` -> [(name, options)]; no name: every benchmark."""
    known = (*BENCHMARKS, *ON_REQUEST)
    chosen: list[tuple[str, list[str]]] = []
    for token in argv:
        if token in known:
            chosen.append((token, []))
        elif chosen:
            chosen[-1][1].append(token)
        else:
            raise SystemExit(f"unknown benchmark {token!r}: one of {', '.join(known)}")
    if not chosen:
        return [(name, default_args(name)) for name in BENCHMARKS]
    return [(name, args or default_args(name)) for name, args in chosen]


def run_one(name: str, args: list[str], results: Path) -> dict[str, object]:
    record: dict[str, object] = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": load_average(),
        "commit": commit(),
        "command": " ".join([f"python -m bench.{name}", *args]),
    }
    print(f"\n## {name}: {record['date']}, load {record['load_average']}, {record['commit']}")
    print(f"$ {record['command']}", flush=True)
    started = time.perf_counter()
    lines: list[str] = []
    proc = subprocess.Popen(
        [sys.executable, "-m", f"bench.{name}", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line.rstrip("\n"))
    code = proc.wait()
    verdicts = [m.group(0) for line in lines if (m := VERDICT.match(line))]
    record.update(
        exit_status=code,
        seconds=round(time.perf_counter() - started, 1),
        verdicts=verdicts,
        passed=code == 0 and not any(v.endswith("FAIL") for v in verdicts),
        # The whole output (up to OUTPUT_LINES lines): each benchmark prints its same-run
        # baseline and figures in ms beside its verdicts; a tail of 15 lines lost them.
        output=lines[-OUTPUT_LINES:],
    )
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
    shown = "; ".join(verdicts) or ("exit 0" if code == 0 else f"exit {code}")
    print(
        f"| {record['date']} | {record['load_average']} | {record['commit']} | {name} | "
        f"{shown} | {record['seconds']} s |",
        flush=True,
    )
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.splitlines()[0],
        add_help=False,
        allow_abbrev=False,
    )
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("--list", action="store_true", help="name the benchmarks and stop")
    parser.add_argument("--results", type=Path, default=ROOT / "var" / "bench" / "results.jsonl")
    known, rest = parser.parse_known_args(argv)
    if known.help:
        print(__doc__)
        return 0
    if known.list:
        print("\n".join([*BENCHMARKS, *(f"{n} (only when named)" for n in ON_REQUEST)]))
        return 0
    records = [run_one(name, args, known.results) for name, args in selection(rest)]
    print("\n| date (UTC) | load avg 1/5/15 | commit | benchmark | verdicts | time |")
    print("|---|---|---|---|---|---|")
    for r in records:
        shown = "; ".join(r["verdicts"]) or f"exit {r['exit_status']}"  # type: ignore[arg-type]
        print(
            f"| {r['date']} | {r['load_average']} | {r['commit']} | {r['benchmark']} | "
            f"{shown} | {r['seconds']} s |"
        )
    print(f"\nrecorded in {known.results}")
    return 0 if all(r["passed"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
