"""Run a snippet of Python in a fresh interpreter from the checkout (what a new process sees:
imports, hooks, warnings at exit)."""

from __future__ import annotations

import os
import subprocess
import sys

from service.config import PROJECT_ROOT


def run_python(
    code: str,
    *args: str,
    options: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python [options] -c code args...``; fails the test unless it exits 0."""
    done = subprocess.run(
        [sys.executable, *options, "-c", code, *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env} if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done
