"""Several workers on one PostgreSQL database: shared queue, no double claims, shared budgets."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from emulator.testing import EmulatorHandle
from service.config import Settings
from service.db.models import Operation
from service.db.session import Database
from service.db.types import utcnow
from service.services import discovery, leases, policies
from service.worker.reconciler import Reconciler
from tests.support.api import World
from tests.support.reconcile import CLI, fast_runtime, operations_of, settled, wire

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _postgresql_only(db_backend: str) -> None:
    if db_backend != "postgresql":
        pytest.skip("several workers need row locks: PostgreSQL only (SQLite runs one worker)")


def test_two_claimers_never_take_the_same_operation(
    world: World, settings: Settings, database: Database, fresh_emulator: EmulatorHandle
) -> None:
    box = fresh_emulator.sandbox()
    for i in range(40):
        box.add_service(f"svc-{i:02d}", compute_type="ACI", app_insights_enabled=False)
    rts = [fast_runtime(settings, database, fresh_emulator, tenant_concurrency=100) for _ in "ab"]
    w = wire(world, rts[0], box)
    discovery.discover(rts[0], w.workspace_id)
    change, _ = policies.put_policy(
        rts[0], CLI, w.tenant, None, None, {"app_insights": True}, None, max_attempts=3
    )
    assert len(change.operations) == 40
    taken: dict[str, list[str]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def claimer(name: str, index: int) -> None:
        start.wait()
        # Scoped to this test's tenant: other tests' operations share the session database.
        while claims := leases.claim(rts[index], f"worker-{name}", 3, only_tenants={w.tenant_id}):
            taken[name] += [c.id for c in claims]

    threads = [threading.Thread(target=claimer, args=(n, i)) for i, n in enumerate("ab")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    everything = taken["a"] + taken["b"]
    assert len(everything) == len(set(everything)) == 40
    assert taken["a"]
    assert taken["b"]


def test_two_workers_share_the_queue_within_the_tenant_cap_and_the_write_budget(
    world: World, settings: Settings, database: Database, fresh_emulator: EmulatorHandle
) -> None:
    fresh_emulator.set_limits(mms={"operation_duration_s": 0.2})
    box = fresh_emulator.sandbox()
    for i in range(24):
        box.add_service(f"svc-{i:02d}", compute_type="AKS", app_insights_enabled=False)
    caps = {"tenant_concurrency": 4, "subscription_writes_per_s": 8.0}
    rts = [fast_runtime(settings, database, fresh_emulator, **caps) for _ in "ab"]
    w = wire(world, rts[0], box)
    discovery.discover(rts[0], w.workspace_id)
    policies.put_policy(
        rts[0], CLI, w.tenant, None, None, {"app_insights": True}, None, max_attempts=3
    )

    stop = threading.Event()
    peak = peak_followed = 0

    def watch() -> None:
        """The tenant's attempts in threads (the cap's count), and its operations followed
        without one (they hold no place in the cap)."""
        nonlocal peak, peak_followed
        while not stop.is_set():
            with database.engine.connect() as conn:
                rows = conn.execute(
                    select(Operation.following_since.is_(None), func.count())
                    .where(
                        Operation.tenant_id == w.tenant_id,
                        Operation.state == "running",
                        Operation.lease_expires_at >= utcnow(),
                    )
                    .group_by(Operation.following_since.is_(None))
                ).all()
            counts = {bool(in_thread): n for in_thread, n in rows}
            peak = max(peak, counts.get(True, 0))
            peak_followed = max(peak_followed, counts.get(False, 0))
            time.sleep(0.005)

    workers = [
        Reconciler(rt, f"worker-{n}", only_tenants={w.tenant_id})
        for rt, n in zip(rts, "ab", strict=True)
    ]
    claimed: Counter[str] = Counter()

    def run(rec: Reconciler) -> None:
        while not stop.is_set():
            claimed[rec.worker_id] += rec.reconcile_once().claimed
            time.sleep(0.01)

    threads = [threading.Thread(target=watch)] + [
        threading.Thread(target=run, args=(r,)) for r in workers
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while not settled(rts[0], w.tenant_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(10)
    for r in workers:
        r.close()

    assert {op.state for op in operations_of(rts[0], w.tenant_id)} == {"succeeded"}
    patches = Counter(
        e.path.rsplit("/", 1)[-1] for e in fresh_emulator.requests("mms.service_patch")
    )
    assert sorted(patches) == [f"svc-{i:02d}" for i in range(24)]
    assert set(patches.values()) == {1}  # each endpoint written once, never twice at once
    assert claimed["worker-a"] > 0
    assert claimed["worker-b"] > 0
    assert peak <= 4
    assert peak_followed > 4  # Azure operations in flight beyond the cap: followed, no thread
    assert fresh_emulator.state.throttle.max_writes_per_second(box.subscription_id) <= 8
