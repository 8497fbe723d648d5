"""gunicorn settings, sized for 2 cores. Every value can be overridden by GUNICORN_* / BIND."""

import os
import tempfile

# prometheus-client's multi-process mode: every worker writes its samples to this directory and
# /metrics aggregates them. Set before the workers import prometheus_client.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="amlcp-metrics-"))
# Without REDIS_URL the workers share the log query budgets and API-key revocations through
# this file (service/adapters/host_coordination.py), so together they use the whole budget.
os.environ.setdefault(
    "COORDINATION_FILE", os.path.join(tempfile.mkdtemp(prefix="amlcp-coord-"), "coord.db")
)

bind = os.environ.get("BIND", "127.0.0.1:8080")
# Requests are mostly I/O (database, Azure): a few processes with threads each.
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
control_socket_disable = True  # no gunicornc socket in $HOME (or $XDG_RUNTIME_DIR), shared per user


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the aggregated metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def when_ready(server):  # type: ignore[no-untyped-def]
    """`make run` (RUN_RECONCILER=1): start one reconciler process beside the API.

    Started once by the arbiter, never inside the request workers (each would run its own copy).
    """
    if os.environ.get("RUN_RECONCILER", "").lower() not in ("1", "true", "yes"):
        return
    import subprocess
    import sys

    server.amlcp_reconciler = subprocess.Popen([sys.executable, "-m", "service.worker"])
    server.log.info("reconciler started (pid %s)", server.amlcp_reconciler.pid)


def on_exit(server):  # type: ignore[no-untyped-def]
    """Stop the reconciler gracefully with the server (it hands its leases back)."""
    proc = getattr(server, "amlcp_reconciler", None)
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except Exception:  # noqa: BLE001 - still stopping: make sure it goes
            proc.kill()
