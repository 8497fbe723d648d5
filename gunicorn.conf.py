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
# Requests are mostly I/O (database, Azure): a few processes, each serving many connections as
# greenlets. gevent, not threads: a slow client holds a greenlet, never a thread the others need
# (service/serving.py says why and what it changes; README "Slow clients").
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "service.serving.Worker"
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
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


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Import the Azure SDKs in a real OS thread shortly after the worker starts serving.

    Imported before serving (as this hook did), the ML SDKs added 2-4 s of CPU to every
    worker's start and so to ``/readyz``; imported by the first request that needs one
    (discovery, container logs, a v2 deployment's telemetry query), they held the GIL for
    seconds while every other request of that gevent worker waited. In a thread of its own the
    import shares the GIL with the worker's hub, which gets it back every switch interval
    (lowered to 1 ms meanwhile), so the worker keeps answering; a request that needs an SDK
    during those seconds waits for that import, the others do not (bench/sdk_import.py).
    ``AMLCP_WARM_IMPORTS_DELAY_S`` (default 1): when it starts, after the worker's first
    requests (readiness); ``AMLCP_WARM_IMPORTS=0``: not at all (imports on first use).
    """
    freeze_heap()
    if os.environ.get("AMLCP_WARM_IMPORTS", "1").lower() in ("0", "false", "no"):
        return
    delay = float(os.environ.get("AMLCP_WARM_IMPORTS_DELAY_S", "1"))
    runtime = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("amlcp.runtime")
    ca_bundle = runtime.settings.azure.ca_bundle if runtime is not None else None
    start_warm_imports(delay, worker.log if worker is not None else None, ca_bundle)


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    """A new worker (this runs in it, before it imports the app) starts with the garbage
    collector off: its start is imports and the app's construction, objects that live as long
    as the worker, and the collections they triggered were a share of the time to /readyz.
    ``freeze_heap`` (post_worker_init) turns it back on."""
    import gc

    gc.disable()


def freeze_heap(collect=None):  # type: ignore[no-untyped-def]
    """Move what the worker has built so far (modules, the app, the SDKs once imported) out of
    the garbage collector's generations: they live as long as the worker, and every full
    collection walked them all again, a pause of tens of ms in whichever request triggered it
    (the p99 of bench/fleet_queries.py). Objects made later are collected as before.

    ``collect``: the generation to collect first, or None to freeze without collecting.
    - At the worker's start (post_worker_init), None. With the collector off since the fork,
      all ~100,000 objects of the imports sit in the young generation, so any collection walks
      them all: 85-120 ms of CPU before the worker serves, a tenth of the time to ``/readyz``,
      to find ~2,000 unreachable objects (~400 KB: the scaffolding of attrs' and typing's
      class building), which now stay for the worker's life.
    - After the background import, 1: the SDKs' ~200,000 objects are in the old generation by
      then, and a full collection of them took ~110 ms to find ~140 unreachable objects,
      holding the GIL while the worker served (one request of each new worker stalled that
      long: bench/fleet_queries.py's page p99)."""
    import gc

    if collect is not None:
        gc.collect(collect)
    gc.freeze()
    gc.enable()  # off while the worker imported and built the app: see post_fork


def start_warm_imports(delay_s=0.0, log=None, ca_bundle=None):  # type: ignore[no-untyped-def]
    """Run ``service.bootstrap.warm_imports`` (for the app's ``ca_bundle``: the directory the
    SDKs will trust is built there too) in a real OS thread: in a gevent-patched worker
    one of gevent's native thread pool (a patched ``threading.Thread`` is a greenlet, which is
    the thing that must not import). Returns something with ``join()``-like waiting: the pool's
    result (``get()``) or the thread."""
    import sys
    import threading
    import time

    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency of the worker class
        monkey = None
    patched = monkey is not None and monkey.is_module_patched("threading")
    sleep = monkey.get_original("time", "sleep") if patched else time.sleep

    from service import bootstrap

    def run() -> None:
        sleep(delay_s)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, 0.001))
        try:
            bootstrap.warm_imports(ca_bundle)
            freeze_heap(collect=1)
        except Exception:  # a request that needs an SDK imports it again
            if log is not None:
                log.exception("background import of the Azure SDKs failed")
        finally:
            sys.setswitchinterval(interval)

    if patched:
        import logging
        import platform

        import gevent

        # logging's module lock (taken by every getLogger: the SDKs' modules call it as they
        # import, gunicorn on every request) is one the import thread and the hub's greenlets
        # share, and gevent's patching made it a gevent lock, which does not hand itself on
        # reliably across OS threads: a request that waited for it while this thread held it
        # was now and then never woken (2-4 of 20 fresh workers on a loaded 2-core machine: a
        # /healthz without an answer, then SIGTERM waiting out the graceful timeout). Its holders
        # never yield inside it (no I/O), so the interpreter's own lock is the right one here.
        logging._lock = monkey.get_original("_thread", "RLock")()  # type: ignore[attr-defined]
        # azure-identity asks platform.platform() at import, which runs `uname -p`: gevent can
        # start a process only from its hub's thread. Asked here once, it is cached for all.
        platform.platform()
        done = gevent.get_hub().threadpool.spawn(run)
        done.rawlink(lambda _: bootstrap.warming(None))
        bootstrap.warming(done.get)  # a cooperative wait for the hub's greenlets
        return done
    thread = threading.Thread(target=run, name="amlcp-warm-imports", daemon=True)
    bootstrap.warming(thread.join)
    thread.start()
    return thread


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    """A worker's last step: write its queued audit events, then leave without joining threads.

    Interpreter exit joins every non-daemon thread, and the SDKs start their own (azureml-core's
    request pool, concurrent.futures executors): one blocked in a call kept a stopping worker
    alive for ever (threads in futex wait, SIGTERM ignored, the port still held), and when the
    master was killed meanwhile the worker was orphaned. Nothing is lost by not joining them:
    a request still in flight has already been given up by the master's stop.
    """
    if not worker.booted:
        return  # a worker that failed to boot exits as gunicorn expects (its code stops the master)
    import sys

    from service.services import audit_queue

    error = sys.exc_info()[1]
    code = error.code if isinstance(error, SystemExit) and isinstance(error.code, int) else 0
    try:
        audit_queue.close_all()
    finally:
        server.log.info("worker %s exiting", worker.pid)
        for handler in server.log.error_log.handlers:
            handler.flush()
        os._exit(code)


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
    """Stop the reconciler with the server: it finishes its step and hands its leases back.

    Bounded, so that Ctrl-C leaves nothing running within 10 s: a step still running after
    RECONCILER_STOP_S is killed (its lease expires and another attempt takes over).
    """
    proc = getattr(server, "amlcp_reconciler", None)
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=float(os.environ.get("RECONCILER_STOP_S", "5")))
        except Exception:  # noqa: BLE001 - still stopping: make sure it goes
            proc.kill()
            proc.wait()
