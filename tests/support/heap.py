"""Full garbage collections of the test process run between tests, never during one.

Late in a full run this process holds ~1.65 million long-lived objects (the SDKs, emulators,
apps and runtimes of ~2,600 tests). Each full (generation 2) collection walked them all: 49
collections in one run, 25 of them over 0.3 s and the longest 1.2 s, while every thread stood
still (a 10 ms ticker thread saw gaps up to 0.98 s). Tests that time leases to a second cannot
tell such a pause from a stalled worker: with a 1 s lease renewed every third of it, a renewal
has ~0.5 s to spare, and one pause let another worker take over a lease whose write was still
unanswered (``test_reconciler_fencing.py``, in CI). The service's own processes freeze their
long-lived heap after their start (``gunicorn.conf.py``: ``freeze_heap``; the worker's
``service.worker.__main__``); this does the same for the test process, test by test.

Everything that exists when a test starts is moved out of the collector's generations
(``gc.freeze``) and put back when it ends: a collection during a test walks only what the test
made. What became garbage meanwhile is collected by a full collection between tests, once
``BETWEEN_TESTS_EVERY_S`` have passed since the last. Each walks
the whole heap (~1.2 s late in a run). Every 10 s they were 94 and the run took 13 min 37 s;
every 30 s, 22 full collections over 0.3 s (22 s in all, against the process's own 25 before)
and 13 min 8 s, the longest collection during a test 85 ms.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import pytest

BETWEEN_TESTS_EVERY_S = 30.0
_last_full = time.monotonic()


@pytest.fixture(autouse=True)
def _full_collections_between_tests() -> Iterator[None]:
    global _last_full
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if time.monotonic() - _last_full >= BETWEEN_TESTS_EVERY_S:
            gc.collect()
            _last_full = time.monotonic()
