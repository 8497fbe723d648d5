"""``python -m service.worker``: run the reconciler until SIGTERM or SIGINT.

The composition root of the worker: settings -> runtime -> Reconciler. It refuses a schema that
is not at head, like the API. Several workers may share a PostgreSQL database; on SQLite run one.
Stopping is graceful: no new work is claimed, running attempts hand their leases back at their
next wait (another worker resumes them), then the process exits 0.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading

from prometheus_client import start_http_server

from service.bootstrap import (
    build_runtime,
    refuse_secrets_without_key,
    warm_imports,
    with_credential_keys,
)
from service.config import Settings, SettingsError
from service.db.migrate import schema_behind
from service.logs import configure_logging
from service.worker.reconciler import Reconciler

log = logging.getLogger("service.worker")


def main() -> int:
    """Entry point; returns the exit code."""
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level_number)
        settings = with_credential_keys(settings)
    except SettingsError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        return 2
    # The reconciler uses every Azure adapter from many threads at once: import them here,
    # before the threads start, not on first use (the API worker defers them for /readyz).
    # The collector is off meanwhile: what the imports and the runtime make lives as long as
    # the process, and is frozen below (as gunicorn.conf.py's ``freeze_heap`` does for an API
    # worker).
    gc.disable()
    warm_imports(settings.azure.ca_bundle)
    runtime = build_runtime(settings)
    behind = schema_behind(runtime.database.engine)
    if behind is not None:
        log.error("%s: run db-upgrade", behind)
        return 3
    refuse_secrets_without_key(runtime)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping after the current step", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if settings.worker_metrics_port:
        host = settings.bind.rpartition(":")[0].strip("[]") or "127.0.0.1"
        start_http_server(settings.worker_metrics_port, addr=host)
        log.info("worker metrics on %s:%s/metrics", host, settings.worker_metrics_port)
    shard = settings.reconciler.only_tenants
    reconciler = Reconciler(runtime, only_tenants=set(shard) if shard else None)
    log.info("reconciler %s started", reconciler.worker_id)
    # ~410,000 objects by now (modules, SDKs, runtime): every full collection walked them all
    # again with every attempt thread stopped, 0.12-0.27 s each in bench.reconcile_converge
    # (60-90 ms on a quiet machine). Out of the collector's generations, they are never walked
    # (those collections took 0.02-0.13 s); what the reconciler makes from here is collected
    # as before.
    gc.freeze()
    gc.enable()
    reconciler.run(stop)
    log.info("reconciler %s stopped", reconciler.worker_id)
    runtime.close()
    runtime.database.dispose()
    return 0


if __name__ == "__main__":
    code = main()
    # The reconciler has stopped and handed its leases back. Leave without joining the SDKs'
    # own threads (azureml-core's request pool): one blocked in a call kept this process alive
    # after Ctrl-C (issue 15 item 1).
    logging.shutdown()
    os._exit(code)
