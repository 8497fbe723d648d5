"""The query audit queue: order, the full-queue fallback, a failing writer, flush on close."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from service.services.audit_queue import AuditQueue


class Recorder:
    """A writer that records each batch; it can be held (blocked) or made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()
        self.fail = False

    def __call__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.entered.set()
        self.release.wait(10)
        if self.fail:
            raise RuntimeError("database down")
        self.batches.append([r["n"] for r in rows])

    @property
    def rows(self) -> list[int]:
        return [n for batch in self.batches for n in batch]


def test_rows_are_written_in_the_order_they_were_queued() -> None:
    writer = Recorder()
    queue = AuditQueue(writer, capacity=1000)
    for n in range(300):
        queue.put({"n": n})
    queue.flush()
    assert writer.rows == list(range(300))
    assert queue.sync_writes == 0
    queue.close()


def test_a_full_queue_makes_the_caller_write_queued_rows_first_then_its_own() -> None:
    writer = Recorder()
    writer.release.clear()
    queue = AuditQueue(writer, capacity=2)
    queue.put({"n": 0})
    assert writer.entered.wait(5)  # the background writer holds row 0
    queue.put({"n": 1})
    queue.put({"n": 2})  # the queue is now full
    done = threading.Event()

    def caller() -> None:
        queue.put({"n": 3})  # cannot be queued: written by this caller
        done.set()

    t = threading.Thread(target=caller)
    t.start()
    assert not done.wait(0.2)  # it waits for the writer in progress, it does not skip ahead
    writer.release.set()
    t.join(5)
    assert done.is_set()
    assert 3 in writer.rows  # written before put() returned
    assert writer.rows == [0, 1, 2, 3]
    assert queue.sync_writes == 1
    queue.close()


def test_capacity_zero_writes_every_row_inline() -> None:
    writer = Recorder()
    queue = AuditQueue(writer, capacity=0)
    queue.put({"n": 1})
    assert writer.rows == [1]  # no flush needed
    assert queue.sync_writes == 1


def test_a_failing_writer_keeps_rows_and_callers_see_the_failure() -> None:
    writer = Recorder()
    writer.fail = True
    queue = AuditQueue(writer, capacity=10)
    queue.put({"n": 0})
    assert writer.entered.wait(5)
    with pytest.raises(RuntimeError):
        queue.flush()  # row 0 is kept, not lost
    assert queue.pending() == 1
    writer.fail = False
    queue.put({"n": 1})
    queue.flush()
    assert writer.rows == [0, 1]
    queue.close()


def test_a_caller_writing_inline_gets_the_error_while_the_database_is_down() -> None:
    writer = Recorder()
    writer.fail = True
    queue = AuditQueue(writer, capacity=0)
    with pytest.raises(RuntimeError):
        queue.put({"n": 0})


def test_close_writes_what_is_left_and_later_rows_are_written_inline() -> None:
    writer = Recorder()
    writer.release.clear()
    queue = AuditQueue(writer, capacity=100)
    for n in range(5):
        queue.put({"n": n})
    writer.release.set()
    queue.close()
    assert writer.rows == list(range(5))
    queue.put({"n": 5})  # after shutdown: inline, never lost
    assert writer.rows == list(range(6))


def test_rows_of_a_sequential_caller_are_written_together_not_one_transaction_each() -> None:
    """The writer lets a batch gather for LINGER_S after its first row (issue 16): a caller
    queuing a row every few milliseconds costs one write, not one per row."""
    import time

    from service.services import audit_queue

    writer = Recorder()
    queue = AuditQueue(writer, capacity=1000)
    for n in range(4):
        queue.put({"n": n})
        time.sleep(audit_queue.LINGER_S / 10)
    deadline = time.monotonic() + 10
    while writer.rows != [0, 1, 2, 3]:
        assert time.monotonic() < deadline, writer.batches
        time.sleep(0.01)
    assert writer.batches == [[0, 1, 2, 3]]
    queue.close()
