"""Crash loop: run the kill -9 test (``tests/e2e/test_worker_crash.py``) N times in a row.

    .venv/bin/python -m bench.crash_loop [--runs 50] [--backend postgresql|sqlite] [--stop-on-fail]

Each run is a fresh ``pytest`` process (its own emulator and throwaway database), as CI runs it.
The test SIGKILLs a reconciler right after its first PATCH was accepted, starts another and
checks that every operation succeeded, no attempt count passed its cap, and the emulator saw
exactly one accepted PATCH per service (no 409 "operation in progress"). Prints one line per run
and the pass/fail counts; a failed run's diagnostics (operations, attempts, PATCHes, the workers'
log) are kept under ``--keep`` (default ``var/crash_loop/``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/e2e/test_worker_crash.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--stop-on-fail", action="store_true")
    parser.add_argument("--keep", type=Path, default=ROOT / "var" / "crash_loop")
    args = parser.parse_args()
    args.keep.mkdir(parents=True, exist_ok=True)
    passed = failed = other = 0
    durations: list[float] = []
    env = dict(os.environ)
    if args.backend == "postgresql":
        env["REQUIRE_POSTGRES"] = "1"  # a run without PostgreSQL fails instead of skipping
    for run in range(1, args.runs + 1):
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                TEST,
                "-q",
                "-p",
                "no:randomly",
                "-p",
                "no:cacheprovider",
                "-k",
                args.backend,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
        )
        took = time.monotonic() - started
        durations.append(took)
        summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
        if result.returncode == 0 and " passed" in summary and "skipped" not in summary:
            passed += 1
            verdict = "pass"
        elif result.returncode == 1:
            failed += 1
            verdict = "FAIL"
            (args.keep / f"run-{run:03d}.log").write_text(result.stdout + result.stderr)
        else:
            other += 1
            verdict = f"ERROR (exit {result.returncode})"
            (args.keep / f"run-{run:03d}.log").write_text(result.stdout + result.stderr)
        print(f"run {run:3d}/{args.runs}: {verdict:5s} {took:6.1f} s  {summary}", flush=True)
        if verdict != "pass" and args.stop_on_fail:
            break
    total = passed + failed + other
    print(
        f"crash_loop backend={args.backend} runs={total} passed={passed} failed={failed} "
        f"errors={other} median_run_s={sorted(durations)[len(durations) // 2]:.1f}",
        flush=True,
    )
    return 0 if passed == total else 1


if __name__ == "__main__":
    sys.exit(main())
