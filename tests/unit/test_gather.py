"""``gather``: the independent lists of one discovery run a few at a time, results in order,
and the first failure ends it without starting the reads still waiting."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from service.adapters.azure_calls import gather
from service.errors import AzureCallFailed

WAIT_S = 5.0  # a safety net only: every event below is set by the test itself


def test_results_come_in_the_order_of_the_reads_whatever_order_they_end_in() -> None:
    first_may_end = threading.Event()

    def slow_first() -> str:
        assert first_may_end.wait(WAIT_S)
        return "first"

    def second() -> str:
        first_may_end.set()  # the first read ends only after this one did
        return "second"

    assert gather("t", [slow_first, second]) == ["first", "second"]


def test_no_more_than_at_once_reads_run_together() -> None:
    release = threading.Event()
    lock = threading.Lock()
    running = 0
    most = 0
    two_started = threading.Barrier(3, timeout=WAIT_S)

    def read(i: int) -> Callable[[], int]:
        def run() -> int:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            if i < 2:
                two_started.wait()  # the first two run together...
                assert release.wait(WAIT_S)
            with lock:
                running -= 1
            return i

        return run

    done: list[list[int]] = []
    runner = threading.Thread(
        target=lambda: done.append(gather("t", [read(i) for i in range(5)], 2))
    )
    runner.start()
    two_started.wait()
    with lock:
        assert running == 2  # ...and no third one starts while they hold both places
    release.set()
    runner.join(WAIT_S)
    assert done == [[0, 1, 2, 3, 4]]
    assert most == 2


def test_the_first_failure_is_raised_and_reads_not_started_yet_never_start() -> None:
    started: list[int] = []

    def read(i: int) -> Callable[[], int]:
        def run() -> int:
            started.append(i)
            if i == 0:
                raise AzureCallFailed("Azure ML: list online deployments: HTTP 503")
            return i

        return run

    with pytest.raises(AzureCallFailed, match="HTTP 503"):
        gather("t", [read(i) for i in range(6)], 1)
    assert started == [0]


def test_one_read_or_none_runs_in_the_callers_thread() -> None:
    caller = threading.current_thread()
    assert gather("t", [lambda: threading.current_thread() is caller]) == [True]
    assert gather("t", []) == []
