"""What both ML adapters (azureml-core for v1, azure-ai-ml for v2) do the same way around an SDK
call: run it in its own thread under one deadline, keep a write that got no answer in time from
being repeated, and read a status, Retry-After and message out of an error."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from service.errors import AzureCallFailed, WriteNotSent, WriteOutcomeUnknown
from service.metrics import AZURE_CALLS

TEMPORARY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
# A discovery lists many pages (v2: one list per online endpoint); one that met a temporary
# error is read again in place after this long (or Azure's Retry-After), rather than the whole
# discovery failing and starting over from its first page.
LIST_RETRY_WAIT_S = 0.5
# The lists of the deployments of a workspace's online endpoints (ARM lists them per endpoint)
# run this many at once: one after another, a workspace of N online endpoints took N round trips
# to Azure. Only their burst changes, not how many reads the subscription's budget is charged.
LISTS_AT_ONCE = 8
T = TypeVar("T")


class Call:
    """One SDK call running in its own thread: ``done`` is set once it ended either way."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


def start_call(
    thread_name: str, fn: Callable[[], Any], on_end: Callable[[], None] | None = None
) -> Call:
    """Start ``fn`` in a daemon thread; ``on_end`` runs in that thread when it ends."""
    call = Call()

    def run() -> None:
        try:
            call.value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            call.error = exc
        finally:
            if on_end is not None:
                on_end()
            call.done.set()

    threading.Thread(target=run, name=thread_name, daemon=True).start()
    return call


def gather(
    thread_name: str, reads: Sequence[Callable[[], T]], at_once: int = LISTS_AT_ONCE
) -> list[T]:
    """Run independent reads at most ``at_once`` at a time; their results in order.

    The first failure is raised: reads not started by then never start, those running end on
    their own (each is a read under its own deadline, its result dropped)."""
    if len(reads) < 2:
        return [read() for read in reads]
    failures: list[BaseException] = []  # kept before the failing future ends

    def guarded(read: Callable[[], T]) -> T:
        if failures:
            raise _NotStarted
        try:
            return read()
        except BaseException as exc:
            failures.append(exc)
            raise

    pool = ThreadPoolExecutor(min(at_once, len(reads)), thread_name_prefix=thread_name)
    try:
        futures = [pool.submit(guarded, read) for read in reads]
        wait(futures, return_when=FIRST_EXCEPTION)
        if failures:
            raise failures[0]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class _NotStarted(Exception):
    """A read of ``gather`` skipped because another one had failed."""


class GuardedWrites:
    """Writes under one deadline (the reconciler renewed its lease for that long right before
    calling). Past it the write may still reach Azure: ``WriteOutcomeUnknown``, whose
    ``settle()`` waits for the call to end; until then this process refuses another write to
    the same target."""

    def __init__(self, sdk: str, timeout_s: float) -> None:
        self._sdk = sdk
        self._timeout = timeout_s
        self._lock = threading.Lock()
        self._unanswered: dict[Hashable, threading.Event] = {}

    def write(
        self,
        key: Hashable,
        what: str,
        fn: Callable[[], Any],
        result: Callable[[Call], str],
    ) -> str:
        """Run ``fn``; ``result`` turns the ended call into the operation id (or raises)."""
        with self._lock:
            earlier = self._unanswered.get(key)
            if earlier is not None and not earlier.is_set():
                raise AzureCallFailed(
                    f"Azure ML: an earlier {what} is still unanswered", retry_after_s=self._timeout
                )
        call = start_call(f"{self._sdk}: {what}", fn)
        if call.done.wait(self._timeout):
            return result(call)
        AZURE_CALLS.labels(self._sdk, "timeout").inc()
        with self._lock:
            self._unanswered[key] = call.done

        def settle(timeout_s: float) -> str | None:
            if not call.done.wait(max(0.0, timeout_s)):
                return None
            with self._lock:
                if self._unanswered.get(key) is call.done:
                    del self._unanswered[key]
            return result(call)

        raise WriteOutcomeUnknown(
            f"Azure ML: {what} got no answer within {self._timeout:g} s; it may still be applied",
            settle,
        )


READ_RETRY_MAX_WAIT_S = 2.0  # a read is retried (or a paced write's retaken) after this at most


def _in_place_wait(
    exc: AzureCallFailed, max_wait_s: float, unhinted_wait_s: float | None = None
) -> float | None:
    """How long ``retry_read`` waits before reading again after ``exc``, or None when it does
    not read again: Azure's Retry-After up to ``max_wait_s``; for a temporary error answered
    without one (a 5xx), ``unhinted_wait_s``; never for a call that got no answer in time."""
    wait = exc.retry_after_s
    if wait is None and exc.azure_status is not None:  # answered, e.g. 500: not a timeout
        wait = unhinted_wait_s
    return None if wait is None or wait > max_wait_s else wait


def read_before_write(read: Callable[[], T], send_by: float | None, what: str) -> T:
    """The read a write needs first (the guard's fresh read, the object to update).

    Unpaced (``send_by`` None): retried in place after a short Retry-After (``retry_read``).
    Paced, the read runs between the write's subscription slot and its send, so nothing is
    waited out here: a failure ``retry_read`` would have retried (Azure's Retry-After of at
    most READ_RETRY_MAX_WAIT_S) raises ``WriteNotSent`` with that Retry-After (the caller waits
    it out, then takes a new slot), and so does a read that ended after ``send_by`` (epoch
    seconds): sent then, the write would arrive among later slots' writes. Any other failure is
    raised as it came (the attempt is retried later), as ``retry_read`` would.
    """
    if send_by is None:
        return retry_read(read)
    try:
        value = read()
    except WriteOutcomeUnknown:
        raise
    except AzureCallFailed as exc:
        wait = _in_place_wait(exc, READ_RETRY_MAX_WAIT_S)
        if wait is None:
            raise
        raise WriteNotSent(
            f"{what} not sent: the read before it failed ({exc.detail})",
            reason="read_failed",
            retry_after_s=wait,
        ) from exc
    late = time.time() - send_by
    if late > 0:
        raise WriteNotSent(
            f"{what} not sent: the read before it ended {late:.2f} s after its slot",
            reason="read_slow",
        )
    return value


def retry_read(
    read: Callable[[], T],
    *,
    retries: int = 2,
    max_wait_s: float = READ_RETRY_MAX_WAIT_S,
    unhinted_wait_s: float | None = None,
) -> T:
    """A read (it changes nothing) retried in place when Azure answered with a Retry-After of
    at most ``max_wait_s``: the read before a write, so that a throttled GET does not cost the
    reconciler's whole attempt. With ``unhinted_wait_s``, a temporary error Azure answered
    without a Retry-After (a 5xx) is retried after that long too; a call that got no answer in
    time is not. Anything else is raised as it came."""
    for tries_left in range(retries, -1, -1):
        try:
            return read()
        except AzureCallFailed as exc:
            wait = _in_place_wait(exc, max_wait_s, unhinted_wait_s)
            if not tries_left or wait is None:
                raise
            time.sleep(wait)
    raise AssertionError("unreachable")


def first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else ""
