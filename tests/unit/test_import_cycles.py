"""Every module of the service imports on its own, whatever was imported before it.

A cycle between modules (a imports b imports a) works or fails depending on which one is imported
first, so the suite's own import order can hide it until a process starts from another entry
point. Each module is imported first, in a fresh interpreter state, here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = r"""
import importlib, sys, traceback
failures = []
for name in sys.argv[1:]:
    # service.metrics registers process-wide Prometheus collectors (a leaf module): kept.
    for loaded in [m for m in sys.modules if m.startswith("service.") and m != "service.metrics"]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failures.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\n".join(failures))
sys.exit(1 if failures else 0)
"""


def _service_modules() -> list[str]:
    names = []
    for path in sorted((ROOT / "service").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def test_every_service_module_imports_first_without_a_cycle() -> None:
    modules = _service_modules()
    assert len(modules) > 50  # the walk found the package
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"modules that fail when imported first:\n{result.stdout}"
