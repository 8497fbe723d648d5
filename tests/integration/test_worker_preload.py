"""An API worker imports the Azure SDKs in a native thread once it serves (gunicorn.conf.py
``post_worker_init`` -> ``start_warm_imports``), not before it serves (that added seconds to
``/readyz``) and not in its first request that needs one (that stalled every other request of
the gevent worker for seconds). bench/sdk_import.py measures the three."""

from __future__ import annotations

from tests.support.python_child import run_python

SDKS = ("azure.ai.ml", "azureml.core.webservice", "azure.identity", "azure.monitor.query")

CHILD = """
from gevent import monkey
monkey.patch_all()
import gc, os, runpy, sys, time
import gevent
sdks = {sdks!r}
config = runpy.run_path("gunicorn.conf.py")
assert not any(m in sys.modules for m in sdks), [m for m in sdks if m in sys.modules]
os.environ["AMLCP_WARM_IMPORTS_DELAY_S"] = "0.5"
config["post_fork"](None, None)  # the collector is off while the worker builds the app
assert not gc.isenabled() and gc.get_freeze_count() == 0
config["post_worker_init"](None)  # returns at once: the thread waits 0.5 s, then imports
assert gc.isenabled()
frozen_at_start = gc.get_freeze_count()
# From here no collection starts by itself: any that runs is one the hooks asked for.
gc.set_threshold(10**9)
asked = []
gc.callbacks.append(lambda phase, info: phase == "start" and asked.append(info["generation"]))
imported_when_hook_returned = [m for m in sdks if m in sys.modules]
# Meanwhile the hub keeps running: a greenlet ticks while the thread imports.
ticks = []
def tick():
    while True:
        gevent.sleep(0.01)
        ticks.append(time.perf_counter())
gevent.spawn(tick)
from service import bootstrap
bootstrap.wait_for_warm_imports()  # what an adapter's first use does: a cooperative wait
print(imported_when_hook_returned, sorted(m for m in sdks if m in sys.modules))
print(len(ticks) > 20, bootstrap._warming is None)
# What lives as long as the worker is out of the collector's way, the SDKs too once imported.
print(frozen_at_start > 0, gc.get_freeze_count() > frozen_at_start)
# ... without walking the whole heap again once the SDKs are in (a ~110 ms stall of the GIL).
print(asked)
"""


def run(code: str, **env: str) -> list[str]:
    return run_python(code, env=env, timeout=180).stdout.strip().splitlines()


def test_the_worker_start_hook_imports_the_sdks_in_the_background() -> None:
    first, second, frozen, collections = run(CHILD.format(sdks=SDKS))
    assert first == f"[] {sorted(SDKS)!r}"
    assert second == "True True"
    assert frozen == "True True"
    assert collections == "[1]"  # the young generations only, not a full collection (2)


def test_the_background_import_can_be_turned_off() -> None:
    code = (
        "import runpy, sys\n"
        "config = runpy.run_path('gunicorn.conf.py')\n"
        "config['post_worker_init'](None)\n"
        "from service import bootstrap\n"
        "print(bootstrap._warming is None, 'azure.ai.ml' in sys.modules)\n"
    )
    assert run(code, AMLCP_WARM_IMPORTS="0") == ["True False"]


LOCK_CHILD = """
from gevent import monkey
monkey.patch_all()
import logging, os, runpy, time
import gevent
config = runpy.run_path("gunicorn.conf.py")
os.environ["AMLCP_WARM_IMPORTS_DELAY_S"] = "0"
config["post_fork"](None, None)
config["post_worker_init"](None)
# The lock every getLogger takes, shared by the import thread and the hub's greenlets: the
# interpreter's own, not gevent's (which lost cross-thread wake-ups: a request hung for ever).
print(type(logging._lock) is type(monkey.get_original("_thread", "RLock")()))
# A greenlet asking for loggers all through the import, as gunicorn does on every request (a
# thousand a second): the interpreter's lock, taken by greenlets and the thread, deadlocks
# neither the hub nor the import. (A greenlet that never lets the hub wait, `sleep(0)` in a
# tight loop, starved the import thread of that lock and of the GIL for minutes on a 2-core
# machine: it failed this test whatever the lock; no served request does that.)
done = []
def ask():
    i = 0
    from service import bootstrap
    while bootstrap._warming is not None or i < 100:
        logging.getLogger(f"amlcp.test.{i % 50}")
        i += 1
        gevent.sleep(0.001)
    done.append(i)
worker = gevent.spawn(ask)
worker.join(timeout=120)
print(bool(done))
"""


def test_the_import_thread_and_the_requests_share_loggings_lock_safely() -> None:
    same_lock, finished = run(LOCK_CHILD)
    assert same_lock == "True"
    assert finished == "True"


BUNDLE_CHILD = """
import os, runpy, shutil, sys, tempfile, types
import certifi
bundle = os.path.join(tempfile.mkdtemp(), "private-ca.pem")  # not the default trust
shutil.copyfile(certifi.where(), bundle)
config = runpy.run_path("gunicorn.conf.py")
os.environ["AMLCP_WARM_IMPORTS_DELAY_S"] = "0"
settings = types.SimpleNamespace(azure=types.SimpleNamespace(ca_bundle=bundle))
app = types.SimpleNamespace(extensions={"amlcp.runtime": types.SimpleNamespace(settings=settings)})
config["post_worker_init"](types.SimpleNamespace(wsgi=app, log=None))
from service import bootstrap
from service.adapters import trust
bootstrap.wait_for_warm_imports()
print(bundle in trust._built, sorted(trust._built) == [bundle])
"""


def test_the_worker_start_hook_builds_the_trust_of_the_app_s_own_ca_bundle() -> None:
    """The background import also builds the CA directory the SDKs will trust: the one of the
    worker's app's AZURE_CA_BUNDLE. Before, it built the default trust's (the bundle of the
    runtime built last in the process, read from module state), which no adapter used."""
    (line,) = run(BUNDLE_CHILD)
    assert line == "True True"
