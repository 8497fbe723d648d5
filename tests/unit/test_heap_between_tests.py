"""The test process's full collections happen between tests (``tests/support/heap.py``): a
collection during a test walks only what the test made, not the ~1.65 million objects a full
run holds late (pauses up to 1.2 s, longer than a 1 s lease's spare time)."""

from __future__ import annotations

import gc

BEFORE_THE_TEST = ["made when this module was imported, before any test ran"]


def _tracked(obj: object) -> bool:
    """Whether ``obj`` is in one of the collector's generations (a collection may walk it)."""
    return any(o is obj for o in gc.get_objects())


def test_what_existed_before_a_test_is_out_of_the_collector_s_way_during_it() -> None:
    made_here = ["made by this test"]
    assert gc.is_tracked(BEFORE_THE_TEST)
    assert gc.is_tracked(made_here)
    assert not _tracked(BEFORE_THE_TEST)  # frozen: no collection during the test walks it
    assert _tracked(made_here)
    gc.collect()
    assert not _tracked(BEFORE_THE_TEST)
