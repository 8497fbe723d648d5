"""How much the reconciler asks the database: what a busy worker's ticks and an attempt read.

At 1,000 targets on PostgreSQL (``bench/reconcile_converge.py``) the database client and server
were about a third of the CPU a target costs; these pin the transactions that were cut.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from service.db.models import Operation
from service.services import leases
from service.services.attempt import run_attempt
from service.services.runtime import Runtime
from service.worker.reconciler import Reconciler
from tests.integration.test_reconciler_fencing import (  # noqa: F401 - fixtures used by name
    _queued,
    fake_ml_port,
    fake_ml_runtime,
)
from tests.support.api import World
from tests.support.fake_ml import FakeMl


@contextmanager
def _transactions(rt: Runtime) -> Iterator[list[list[str]]]:
    """The statements of every transaction begun on ``rt``'s engine meanwhile, in order."""
    engine = rt.database.engine
    seen: list[list[str]] = []
    current = threading.local()

    def begin(conn: Any) -> None:
        current.statements = []
        seen.append(current.statements)

    def execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements = getattr(current, "statements", None)
        if statements is not None:
            statements.append(statement)

    event.listen(engine, "begin", begin)
    event.listen(engine, "before_cursor_execute", execute)
    try:
        yield seen
    finally:
        event.remove(engine, "begin", begin)
        event.remove(engine, "before_cursor_execute", execute)


def _reads(transaction: list[str], table: str) -> bool:
    return any(f"FROM {table}" in statement for statement in transaction)


def test_an_attempt_reads_its_workspace_policies_and_credential_in_one_transaction(
    world: World, rt: Runtime, fake: FakeMl
) -> None:
    """The tenant's credential, read fresh by every attempt, comes with the workspace and the
    tenant's policies. Before, it was a transaction of its own (two statements, and on
    PostgreSQL the pool's ping before each): ~1.6 transactions per target in a P3 run."""
    q = _queued(world, rt, fake)
    with rt.uow() as uow:
        op = uow.session.get(Operation, q.operation_id)
        assert op is not None
        claim = leases.Claim(
            op.id, op.tenant_id, op.workspace_id, op.endpoint_name, 1, 3, None, op.desired, op.cause
        )

    class Lease:
        azure_operation_id = None

        def __init__(self) -> None:
            self.claim = claim

        def keep(self, *, now: bool = False, **changes: object) -> None:
            pass

        def keep_for_write(self) -> None:
            pass

        def wait(self, seconds: float) -> None:
            time.sleep(seconds)

    with _transactions(rt) as seen:
        outcome = run_attempt(rt, claim, Lease(), "w", threading.Event())
    assert outcome.state == "succeeded", outcome.error
    assert fake.writes == [("svc", {"app_insights": True})]
    with_credential = [t for t in seen if _reads(t, "tenant_credentials")]
    assert len(with_credential) == 1  # read fresh, once
    assert _reads(with_credential[0], "workspaces")
    assert _reads(with_credential[0], "policies")


def test_a_busy_worker_looks_for_due_discoveries_and_its_lag_once_a_second(
    world: World, rt: Runtime, fake: FakeMl
) -> None:
    """A worker that claimed something ticks again after 50 ms. Its other questions (which
    workspaces' discovery is due, the lag gauge's oldest due operation) were asked on every
    tick: two transactions each time, ~2 per target in a P3 run on two workers. Now at most
    once a second (HOUSEKEEPING_S), and again once the second has passed."""
    from dataclasses import replace

    from service.worker.reconciler import HOUSEKEEPING_S

    q = _queued(world, rt, fake)
    cfg = replace(rt.settings.reconciler, interval_s=5.0)  # the busy pace is what is tested
    rt = replace(rt, settings=rt.settings.with_overrides(reconciler=cfg))
    worker = Reconciler(rt, "w", only_tenants={q.tenant_id})

    def counts(seen: list[list[str]]) -> tuple[int, int]:
        statements = [s for t in seen for s in t]
        due = sum("workspace_syncs.next_sync_at IS NULL" in s for s in statements)
        lag = sum("min(operations.created_at)" in s for s in statements)
        return due, lag

    try:
        with _transactions(rt) as seen:
            started = time.monotonic()
            for _ in range(10):
                worker.reconcile_once()
            elapsed = time.monotonic() - started
            first = counts(seen)
            time.sleep(max(0.0, HOUSEKEEPING_S - elapsed) + 0.05)
            worker.reconcile_once()
            second = counts(seen)
    finally:
        worker.close()
    # Ten ticks in less than a second ask once (10 each before); a slow machine may have let
    # a second pass meanwhile.
    most = 1 + int(elapsed / HOUSEKEEPING_S)
    assert 1 <= first[0] <= most, (first, elapsed)
    assert 1 <= first[1] <= most, (first, elapsed)
    assert second == (first[0] + 1, first[1] + 1)
