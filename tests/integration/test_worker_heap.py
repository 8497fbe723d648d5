"""The reconciler process (``python -m service.worker``) keeps the garbage collector off while it
imports the SDKs and builds its runtime, then freezes what that made: ~410,000 objects that live
as long as the process, which every full collection walked again with every attempt thread
stopped (0.12-0.27 s each in bench.reconcile_converge). As an API worker does (see
``tests/integration/test_worker_preload.py``)."""

from __future__ import annotations

import ast

from service.db.session import Database
from tests.support.api import TEST_CREDENTIAL_KEY
from tests.support.python_child import run_python

# The worker's start as `python -m service.worker` runs it; its loop reports the collector's
# state instead of reconciling (the loop itself is tested elsewhere).
CHILD = """
import gc, sys
from service.worker import __main__ as worker
from service.worker.reconciler import Reconciler

collections = []
def report(self, stop):
    print(gc.isenabled(), gc.get_freeze_count(), collections)
Reconciler.run = report
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info["generation"]))
sys.exit(worker.main())
"""


def test_the_worker_freezes_what_its_start_made_without_a_full_collection_meanwhile(
    database: Database,
) -> None:
    env = {"DATABASE_URL": database.url, "CREDENTIAL_KEYS": TEST_CREDENTIAL_KEY}
    enabled, frozen, collections = run_python(CHILD, env=env).stdout.split(maxsplit=2)
    assert enabled == "True"  # on again for what the reconciler makes from here
    assert int(frozen) > 100_000  # the SDKs, the runtime, the modules
    # No full collection walked them while they were made (a young one may run before the
    # worker has read its settings and turned the collector off).
    assert 2 not in ast.literal_eval(collections)
