"""An API worker imports the ML SDKs when it starts (gunicorn.conf.py ``post_worker_init``),
so its first container-logs or telemetry request of a v2 deployment does not stall every other
request of the worker for the seconds the import takes (bench/sdk_import.py measures it)."""

from __future__ import annotations

import subprocess
import sys

from service.config import PROJECT_ROOT

CHILD = """
import runpy, sys
config = runpy.run_path("gunicorn.conf.py")
assert "azure.ai.ml" not in sys.modules and "azureml.core" not in sys.modules
config["post_worker_init"](None)
print(sorted(m for m in ("azure.ai.ml", "azureml.core.webservice") if m in sys.modules))
"""


def test_the_worker_start_hook_imports_both_ml_sdks() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "['azure.ai.ml', 'azureml.core.webservice']"
