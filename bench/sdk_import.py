"""How long the first import of the ML SDKs blocks a gevent worker: lazily, preloaded before
the worker serves, or in a background OS thread after it serves (issue 12, issue 16).

    .venv/bin/python -m bench.sdk_import

Runs one fresh gevent-patched process per mode, as a gunicorn API worker is (the application
imported first, as ``wsgi`` does). In each, a greenlet ticks every 5 ms (a stand-in for the
worker's other requests) while the "first request" that needs an SDK runs; the longest gap
between ticks is how long every other request of that worker waited.

- ``lazy``: the request imports the SDKs itself (the first v2 container-logs, discovery or
  telemetry-view request without any preload).
- ``preloaded``: ``ml_targets.preload()`` ran before the worker served (what gunicorn.conf.py's
  ``post_worker_init`` did until issue 16): no stall, but the import is part of the worker's
  start (``worker_start_s``), so of ``/readyz``.
- ``background``: what ``post_worker_init`` does now: ``start_warm_imports`` runs
  ``service.bootstrap.warm_imports`` (the Azure adapters and both ML SDKs) in a native thread
  once the worker serves; the request arrives 0.2 s later, while that import runs, and reaches
  the SDKs through the runtime's adapter (``rt.ml``), which waits for the thread's import
  cooperatively: the other greenlets keep running.

Baseline, same run: the ``lazy`` stall. Target: the background stall well under the lazy one
(<= 0.25 s) with no start-up cost.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import service_cli

ROOT = Path(__file__).resolve().parent.parent
TARGET_STALL_S = 0.25

CHILD = r"""
from gevent import monkey
monkey.patch_all()
import os, runpy, sys, time, gevent
mode = sys.argv[1]
import wsgi  # the application, as a worker imports it before serving
started = time.perf_counter()
if mode == "preloaded":
    from service.adapters.ml_targets import preload
    preload()
startup = time.perf_counter() - started
gaps = []
def tick():
    last = time.perf_counter()
    while True:
        gevent.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
ticker = gevent.spawn(tick)
if mode == "background":
    runpy.run_path("gunicorn.conf.py")["start_warm_imports"](0.0)
    gevent.sleep(0.2)
else:
    gevent.sleep(0.1)
started = time.perf_counter()
if mode == "background":
    # A request reaches the SDKs through an adapter of the runtime: it waits for the import.
    wsgi.app.extensions["amlcp.runtime"].ml.capabilities
import azure.ai.ml
from azure.ai.ml._restclient.arm_ml_service import MachineLearningServicesMgmtClient
import azureml.core.webservice
request = time.perf_counter() - started
gevent.sleep(0.1)
ticker.kill()
print(f"{mode}: worker_start_s={startup:.2f} first_request_import_s={request:.3f} "
      f"longest_stall_of_other_requests_s={max(gaps):.3f}")
"""


def run(mode: str, env: dict[str, str]) -> tuple[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
    )
    line = [x for x in out.stdout.splitlines() if x.startswith(f"{mode}:")]
    if out.returncode != 0 or not line:
        raise RuntimeError(f"{mode}: {out.stderr[-2000:]}")
    return line[0], float(line[0].rsplit("=", 1)[1])


def main(argv: list[str] | None = None) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-sdk-import-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{work / 'service.db'}",
        "CREDENTIAL_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "LOG_LEVEL": "WARNING",
    }
    service_cli(env, "db-upgrade")
    stalls = {}
    for mode in ("lazy", "preloaded", "background"):
        line, stalls[mode] = run(mode, env)
        print(line)
    ratio = stalls["background"] / stalls["lazy"]
    verdict = "PASS" if stalls["background"] <= TARGET_STALL_S else "FAIL"
    print(
        f"background stall {stalls['background']:.3f} s vs lazy (baseline) "
        f"{stalls['lazy']:.3f} s: ratio {ratio:.2f}"
    )
    print(f"stall_s={stalls['background']:.3f} target<={TARGET_STALL_S} {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
