"""How long the first import of the ML SDKs blocks a gevent worker, lazily vs preloaded.

    .venv/bin/python -m bench.sdk_import

Runs two fresh gevent-patched processes, as a gunicorn API worker is. In each, a greenlet ticks
every 10 ms (a stand-in for the worker's other requests) while the "first request" that needs
an SDK runs; the longest gap between ticks is how long every other request of that worker
waited. ``lazy``: the request imports the SDKs itself (as before: the first v2 container-logs or
telemetry-view request). ``preloaded``: ``ml_targets.preload()`` ran at worker start
(gunicorn.conf.py ``post_worker_init``), so the request finds them imported. The import is CPU
work holding the GIL, so no greenlet (and no thread) of the worker runs meanwhile.
"""

from __future__ import annotations

import subprocess
import sys

CHILD = r"""
from gevent import monkey
monkey.patch_all()
import sys, time, gevent
preload = sys.argv[1] == "preloaded"
if preload:
    started = time.perf_counter()
    from service.adapters.ml_targets import preload as run_preload
    run_preload()
    startup = time.perf_counter() - started
else:
    startup = 0.0
gaps = []
def tick():
    last = time.perf_counter()
    while True:
        gevent.sleep(0.01)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
ticker = gevent.spawn(tick)
gevent.sleep(0.1)
started = time.perf_counter()
import azure.ai.ml
from azure.ai.ml._restclient.arm_ml_service import MachineLearningServicesMgmtClient
import azureml.core.webservice
request = time.perf_counter() - started
gevent.sleep(0.1)
ticker.kill()
print(f"{sys.argv[1]}: worker_start_s={startup:.2f} first_request_import_s={request:.3f} "
      f"longest_stall_of_other_requests_s={max(gaps):.3f}")
"""


def main() -> int:
    for mode in ("lazy", "preloaded"):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True
        )
        print(out.stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
