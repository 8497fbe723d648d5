"""Faults: 429 with Retry-After, 5xx, hangs, failed Azure operations, broken credentials. Each ends
in the right operation state and compliance status (real azureml-core, a private emulator)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from emulator.testing import EmulatorHandle, Sandbox
from service.config import Settings
from service.db.models import OperationAttempt
from service.db.session import Database
from service.services import compliance, credentials, discovery, operations, outcomes, policies
from service.services.runtime import Runtime
from service.worker.reconciler import Reconciler
from tests.support.api import World
from tests.support.reconcile import (
    CLI,
    Wired,
    fast_runtime,
    operations_of,
    run_until,
    settled,
    wire,
)


@pytest.fixture
def rt(settings: Settings, database: Database, fresh_emulator: EmulatorHandle) -> Runtime:
    return fast_runtime(settings, database, fresh_emulator)


@pytest.fixture
def box(fresh_emulator: EmulatorHandle) -> Sandbox:
    return fresh_emulator.sandbox()


@pytest.fixture
def reconciler(rt: Runtime) -> Iterator[Reconciler]:
    # Claims nothing until a test scopes it to its own tenant (see _drifted): other tests'
    # operations share the session database.
    rec = Reconciler(rt, "fault-worker", only_tenants=set())
    yield rec
    rec.close()


def _drifted(
    world: World, rt: Runtime, box: Sandbox, reconciler: Reconciler, name: str = "svc"
) -> Wired:
    """One AKS service without App Insights, discovered, under a tenant policy that wants it."""
    box.add_service(name, compute_type="AKS", app_insights_enabled=False)
    w = wire(world, rt, box)
    assert reconciler.only_tenants is not None
    reconciler.only_tenants.add(w.tenant_id)
    discovery.discover(rt, w.workspace_id)
    policies.put_policy(rt, CLI, w.tenant, None, None, {"app_insights": True}, None, max_attempts=4)
    return w


def _history(rt: Runtime, operation_id: str) -> list[tuple[str | None, bool, int | None]]:
    """Each attempt's (outcome, charged, Azure status), in order."""
    with rt.uow() as uow:
        rows = uow.session.execute(
            select(
                OperationAttempt.outcome, OperationAttempt.charged, OperationAttempt.azure_status
            )
            .where(OperationAttempt.operation_id == operation_id)
            .order_by(OperationAttempt.number)
        ).all()
    return [(outcome, charged, status) for outcome, charged, status in rows]


def _compliance_of(rt: Runtime, w: Wired, name: str = "svc") -> str:
    report = compliance.tenant_compliance(rt, CLI, w.tenant)
    states = {o.endpoint: o.compliance.value for ws in report.workspaces for o in ws.offenders}
    return states.get(name, "compliant")


def test_a_throttled_write_is_retried_no_earlier_than_retry_after(
    world: World, rt: Runtime, box: Sandbox, fresh_emulator: EmulatorHandle, reconciler: Reconciler
) -> None:
    w = _drifted(world, rt, box, reconciler)
    fresh_emulator.add_fault("throttle", "mms.service_patch", retry_after_s=1, count=1)
    run_until(reconciler, lambda: settled(rt, w.tenant_id))
    (op,) = operations_of(rt, w.tenant_id)
    # Azure asked for a wait: the throttled attempt is not charged against max_attempts.
    assert (op.state, op.attempts) == ("succeeded", 1)
    assert _history(rt, op.id) == [("waited", False, 429), ("succeeded", True, None)]
    first, second = fresh_emulator.requests("mms.service_patch")
    assert (first.status, second.status) == (429, 202)
    assert second.time - first.time >= 1.0  # the SDK alone would have waited 32 s, or not at all
    assert box.service("svc")["appInsightsEnabled"] is True


def test_server_errors_on_reads_are_retried_in_place(
    world: World, rt: Runtime, box: Sandbox, fresh_emulator: EmulatorHandle, reconciler: Reconciler
) -> None:
    w = _drifted(world, rt, box, reconciler)
    fresh_emulator.add_fault("status", "mms.service_get", status=503, count=2)
    run_until(reconciler, lambda: settled(rt, w.tenant_id))
    (op,) = operations_of(rt, w.tenant_id)
    assert (op.state, op.attempts) == ("succeeded", 1)
    assert len(fresh_emulator.requests("mms.service_patch")) == 1


def test_a_hung_read_times_out_and_the_operation_still_converges(
    world: World, rt: Runtime, box: Sandbox, fresh_emulator: EmulatorHandle, reconciler: Reconciler
) -> None:
    w = _drifted(world, rt, box, reconciler)
    fresh_emulator.add_fault("hang", "mms.service_get", count=1)  # until released
    try:
        run_until(reconciler, lambda: settled(rt, w.tenant_id))
    finally:
        fresh_emulator.clear_faults()
    (op,) = operations_of(rt, w.tenant_id)
    assert op.state == "succeeded"
    assert box.service("svc")["appInsightsEnabled"] is True
    assert len(fresh_emulator.requests("mms.service_patch")) == 1


@pytest.mark.parametrize("route", ["mms.services_validate", "mms.service_patch"])
def test_a_write_answered_after_its_deadline_is_followed_never_sent_again(
    world: World,
    rt: Runtime,
    box: Sandbox,
    fresh_emulator: EmulatorHandle,
    reconciler: Reconciler,
    route: str,
) -> None:
    """update() outlives the call deadline (1 s) and its PATCH lands later: the attempt waits
    for it and follows the operation it started, instead of writing a second time."""
    w = _drifted(world, rt, box, reconciler)
    fresh_emulator.add_fault("hang", route, count=1, hang_s=2.5)
    run_until(reconciler, lambda: settled(rt, w.tenant_id))
    (op,) = operations_of(rt, w.tenant_id)
    assert (op.state, op.attempts) == ("succeeded", 1)
    assert box.service("svc")["appInsightsEnabled"] is True
    patches = fresh_emulator.requests("mms.service_patch")
    assert [e.status for e in patches] == [202]


def test_a_write_that_never_answers_fails_without_a_second_write(
    world: World, settings: Settings, database: Database, fresh_emulator: EmulatorHandle
) -> None:
    """While the abandoned update() may still send its PATCH, nothing else is written; after
    the operation timeout the operation fails, saying the outcome is unknown."""
    rt = fast_runtime(settings, database, fresh_emulator, operation_timeout_s=3)
    box = fresh_emulator.sandbox()
    rec = Reconciler(rt, "never-answered", only_tenants=set())
    try:
        w = _drifted(world, rt, box, rec)
        fresh_emulator.add_fault("hang", "mms.services_validate", count=1)  # until released
        run_until(rec, lambda: settled(rt, w.tenant_id))
        (op,) = operations_of(rt, w.tenant_id)
        assert (op.state, op.attempts) == ("failed", 1)
        assert "unknown" in (op.last_error or "")
        # The hung validation is logged once answered: no second one was sent, and no PATCH.
        assert fresh_emulator.requests("mms.services_validate") == []
        assert fresh_emulator.requests("mms.service_patch") == []
    finally:
        fresh_emulator.clear_faults()
        rec.close()


def test_a_failed_azure_operation_fails_the_operation_until_an_operator_applies_again(
    world: World, rt: Runtime, box: Sandbox, fresh_emulator: EmulatorHandle, reconciler: Reconciler
) -> None:
    w = _drifted(world, rt, box, reconciler)
    fresh_emulator.state.services.fail_next_operations(1, "Quota exceeded for App Insights")
    run_until(reconciler, lambda: settled(rt, w.tenant_id))
    (op,) = operations_of(rt, w.tenant_id)
    assert op.state == "failed"
    assert "Quota exceeded" in (op.last_error or "")
    assert _compliance_of(rt, w) == "failed"
    # A sweep does not hammer a failing endpoint; an operator's apply does try again.
    discovery.discover(rt, w.workspace_id)
    assert len(operations_of(rt, w.tenant_id)) == 1
    operations.apply(rt, CLI, w.tenant, max_attempts=4)
    run_until(reconciler, lambda: settled(rt, w.tenant_id))
    assert [o.state for o in operations_of(rt, w.tenant_id)] == ["failed", "succeeded"]
    assert _compliance_of(rt, w) == "compliant"


def test_a_rejected_credential_fails_the_operation_and_makes_compliance_unknown(
    world: World, rt: Runtime, box: Sandbox, reconciler: Reconciler
) -> None:
    w = _drifted(world, rt, box, reconciler)
    # someone rotates the secret in Entra and pastes a wrong one here
    credentials.put_credential(
        rt,
        CLI,
        w.tenant,
        {"kind": "service_principal", "client_id": box.client_id, "client_secret": "wrong"},
        None,
    )
    run_until(reconciler, lambda: settled(rt, w.tenant_id))
    (op,) = operations_of(rt, w.tenant_id)
    assert op.state == "failed"
    assert "rejected" in (op.last_error or "")
    with pytest.raises(Exception, match="rejected"):
        discovery.discover(rt, w.workspace_id)
    assert _compliance_of(rt, w) == "unknown"
    assert box.service("svc")["appInsightsEnabled"] is False


def test_persistent_throttling_ends_failed_after_the_maximum_attempts(
    world: World, rt: Runtime, box: Sandbox, fresh_emulator: EmulatorHandle, reconciler: Reconciler
) -> None:
    w = _drifted(world, rt, box, reconciler)
    fresh_emulator.add_fault("status", "mms.service_patch", status=502)
    run_until(reconciler, lambda: settled(rt, w.tenant_id))
    (op,) = operations_of(rt, w.tenant_id)
    assert (op.state, op.attempts) == ("failed", 4)
    assert "HTTP 502" in (op.last_error or "")
    assert len(fresh_emulator.requests("mms.service_patch")) == 4


def test_throttling_more_often_than_the_maximum_attempts_does_not_fail_the_operation(
    world: World, rt: Runtime, box: Sandbox, fresh_emulator: EmulatorHandle, reconciler: Reconciler
) -> None:
    w = _drifted(world, rt, box, reconciler)  # max_attempts=4
    fresh_emulator.add_fault("throttle", "mms.service_patch", retry_after_s=0, count=5)
    fresh_emulator.add_fault("status", "mms.service_patch", status=500, count=1)
    run_until(reconciler, lambda: settled(rt, w.tenant_id))
    (op,) = operations_of(rt, w.tenant_id)
    assert (op.state, op.attempts) == ("succeeded", 2)  # the 500 and the success are charged
    assert [s.status for s in fresh_emulator.requests("mms.service_patch")] == [429] * 5 + [
        500,
        202,
    ]
    assert box.service("svc")["appInsightsEnabled"] is True


def test_endless_throttling_still_ends_failed_after_the_free_waits_and_the_maximum_attempts(
    world: World,
    rt: Runtime,
    box: Sandbox,
    fresh_emulator: EmulatorHandle,
    reconciler: Reconciler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outcomes, "THROTTLED_WAITS", 2)
    w = _drifted(world, rt, box, reconciler)  # max_attempts=4
    fresh_emulator.add_fault("throttle", "mms.service_patch", retry_after_s=0)
    run_until(reconciler, lambda: settled(rt, w.tenant_id))
    (op,) = operations_of(rt, w.tenant_id)
    assert (op.state, op.attempts) == ("failed", 4)
    assert [charged for _, charged, _ in _history(rt, op.id)] == [False] * 2 + [True] * 4
    assert len(fresh_emulator.requests("mms.service_patch")) == 6
