"""Crash loop: run the kill -9 test (``tests/e2e/test_worker_crash.py``) N times in a row.

    .venv/bin/python -m bench.crash_loop [--runs 50] [--backend postgresql|sqlite]
                                         [--processes] [--stop-on-fail]

The test SIGKILLs a reconciler right after its first PATCH was accepted, starts another and
checks that every operation succeeded, no attempt count passed its cap, and the emulator saw
exactly one accepted PATCH per service (no 409 "operation in progress").

By default the N runs share one pytest session (``--keep-duplicates``: the same test N times;
each run still has its own private emulator, tenant and worker processes; the session's
PostgreSQL database is shared, as in CI). ``--processes`` starts a fresh pytest process per run
instead (slower: each pays the session start-up). Prints one line per run and the pass/fail
counts; failed runs' output (operations, attempts, the emulator's PATCHes, the workers' log) is
kept under ``--keep`` (default ``var/crash_loop/``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/e2e/test_worker_crash.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--processes", action="store_true", help="one pytest process per run")
    parser.add_argument("--stop-on-fail", action="store_true")
    parser.add_argument("--keep", type=Path, default=ROOT / "var" / "crash_loop")
    args = parser.parse_args()
    args.keep.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if args.backend == "postgresql":
        env["REQUIRE_POSTGRES"] = "1"  # a run without PostgreSQL fails instead of skipping
    base = [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"]
    base += ["-k", args.backend, "-q"]
    verdicts = _processes(args, base, env) if args.processes else _session(args, base, env)
    passed = verdicts.count("pass")
    print(
        f"crash_loop backend={args.backend} runs={len(verdicts)} passed={passed} "
        f"failed={len(verdicts) - passed}",
        flush=True,
    )
    return 0 if verdicts and passed == len(verdicts) else 1


def _session(args: argparse.Namespace, base: list[str], env: dict[str, str]) -> list[str]:
    report = args.keep / "junit.xml"
    started = time.monotonic()
    command = [*base, "--keep-duplicates", f"--junitxml={report}", *[TEST] * args.runs]
    if args.stop_on_fail:
        command.append("-x")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    took = time.monotonic() - started
    (args.keep / "session.log").write_text(result.stdout + result.stderr)
    verdicts: list[str] = []
    if report.exists():
        for i, case in enumerate(ET.parse(report).getroot().iter("testcase"), start=1):
            failed = case.find("failure") is not None or case.find("error") is not None
            skipped = case.find("skipped") is not None
            verdict = "FAIL" if failed else ("skip" if skipped else "pass")
            print(f"run {i:3d}/{args.runs}: {verdict} {float(case.get('time', 0)):6.1f} s")
            verdicts.append(verdict)
    print(f"one pytest session: {took:.0f} s; output in {args.keep / 'session.log'}")
    return verdicts


def _processes(args: argparse.Namespace, base: list[str], env: dict[str, str]) -> list[str]:
    verdicts: list[str] = []
    for run in range(1, args.runs + 1):
        started = time.monotonic()
        result = subprocess.run([*base, TEST], cwd=ROOT, capture_output=True, text=True, env=env)
        took = time.monotonic() - started
        summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
        ok = result.returncode == 0 and " passed" in summary and "skipped" not in summary
        verdict = "pass" if ok else "FAIL"
        if not ok:
            (args.keep / f"run-{run:03d}.log").write_text(result.stdout + result.stderr)
        print(f"run {run:3d}/{args.runs}: {verdict} {took:6.1f} s  {summary}", flush=True)
        verdicts.append(verdict)
        if not ok and args.stop_on_fail:
            break
    return verdicts


if __name__ == "__main__":
    sys.exit(main())
