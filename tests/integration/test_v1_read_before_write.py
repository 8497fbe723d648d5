"""A v1 web service update reads the service first (azureml-core ``Webservice(ws, name)``); a
throttled read is retried in place after Azure's short Retry-After instead of failing the
reconciler's attempt (``azure_calls.retry_read``), and the PATCH is still sent once."""

from __future__ import annotations

import time

import pytest

from emulator.testing import EmulatorHandle, Sandbox
from service.errors import AzureCallFailed, WriteNotSent
from service.ports import MlTarget
from service.services import discovery
from service.services.runtime import Runtime
from tests.support.api import World
from tests.support.reconcile import (
    add_policy,
    ml_target,
    operations_of,
    sdk_runtime,  # noqa: F401 - the `rt` fixture
    settle_with_one_worker,
    wire,
)


@pytest.fixture
def legacy(world: World, rt: Runtime, fresh_emulator: EmulatorHandle) -> tuple[Sandbox, MlTarget]:
    """A v1 web service "legacy" (AKS, App Insights off) and how to reach its workspace."""
    box: Sandbox = fresh_emulator.sandbox()
    box.add_service("legacy", compute_type="AKS", app_insights_enabled=False)
    wired = wire(world, rt, box)
    return box, ml_target(rt, wired.workspace_id)


def test_a_throttled_read_before_the_patch_is_retried_in_place(
    rt: Runtime, fresh_emulator: EmulatorHandle, legacy: tuple[Sandbox, MlTarget]
) -> None:
    _, target = legacy
    fresh_emulator.add_fault("throttle", "mms.service_get", retry_after_s=1, count=1)
    rt.ml.start_update(target, "legacy", app_insights=True)
    throttled, retried, *_ = fresh_emulator.requests("mms.service_get")
    assert (throttled.status, retried.status) == (429, 200)
    assert retried.time - throttled.time >= 1.0  # Azure's Retry-After
    assert len(fresh_emulator.requests("mms.service_patch")) == 1


def test_a_paced_write_whose_read_is_throttled_sends_nothing_and_reports_the_retry_after(
    rt: Runtime, fresh_emulator: EmulatorHandle, legacy: tuple[Sandbox, MlTarget]
) -> None:
    """With a write slot (``send_by``) the read is not retried inside the write, between the
    slot and the PATCH: nothing is sent, Azure's Retry-After goes back to the attempt (which
    waits it out and takes a new slot), and the write cannot arrive among later slots' writes."""
    box, target = legacy
    fresh_emulator.add_fault("throttle", "mms.service_get", retry_after_s=1, count=1)
    with pytest.raises(WriteNotSent) as not_sent:
        rt.ml.start_update(target, "legacy", app_insights=True, send_by=time.time() + 1)
    assert not_sent.value.retry_after_s == 1
    assert [r.status for r in fresh_emulator.requests("mms.service_get")] == [429]
    assert fresh_emulator.requests("mms.services_validate") == []
    assert fresh_emulator.requests("mms.service_patch") == []
    time.sleep(1)
    rt.ml.start_update(target, "legacy", app_insights=True, send_by=time.time() + 1)
    assert len(fresh_emulator.requests("mms.service_patch")) == 1
    assert box.service("legacy")["appInsightsEnabled"] is True


def test_a_paced_write_whose_read_ended_after_its_slot_sends_nothing(
    rt: Runtime, fresh_emulator: EmulatorHandle, legacy: tuple[Sandbox, MlTarget]
) -> None:
    _, target = legacy
    with pytest.raises(WriteNotSent) as not_sent:
        rt.ml.start_update(target, "legacy", app_insights=True, send_by=time.time() - 1)
    assert not_sent.value.retry_after_s is None
    assert len(fresh_emulator.requests("mms.service_get")) == 1
    assert fresh_emulator.requests("mms.service_patch") == []


def test_a_paced_write_whose_read_failed_without_retry_after_raises_that_failure(
    fresh_emulator: EmulatorHandle, rt: Runtime, legacy: tuple[Sandbox, MlTarget]
) -> None:
    """What a read retried in place would not have retried (a 500 without Retry-After) is not
    retried with a new slot either: the attempt is retried later, as before."""
    _, target = legacy
    fresh_emulator.add_fault("status", "mms.service_get", status=500, count=1)
    with pytest.raises(AzureCallFailed) as failed:
        rt.ml.start_update(target, "legacy", app_insights=True, send_by=time.time() + 1)
    assert not isinstance(failed.value, WriteNotSent)
    assert fresh_emulator.requests("mms.service_patch") == []


def test_an_update_right_after_a_read_of_the_service_does_not_read_it_again(
    rt: Runtime, fresh_emulator: EmulatorHandle, legacy: tuple[Sandbox, MlTarget]
) -> None:
    box, target = legacy
    assert rt.ml.get_service(target, "legacy") is not None
    rt.ml.start_update(target, "legacy", app_insights=True)
    # The decision's read, then azureml-core's own re-read after its PATCH: no read in between.
    assert len(fresh_emulator.requests("mms.service_get")) == 2
    assert len(fresh_emulator.requests("mms.service_patch")) == 1
    # A read is used by one update only: the next update reads the service itself.
    rt.ml.start_update(target, "legacy", app_insights=False)
    assert len(fresh_emulator.requests("mms.service_get")) == 4
    assert box.service("legacy")["appInsightsEnabled"] is False


def test_a_read_made_with_a_credential_since_replaced_is_not_reused(
    rt: Runtime, fresh_emulator: EmulatorHandle, legacy: tuple[Sandbox, MlTarget]
) -> None:
    from dataclasses import replace

    _, target = legacy
    assert rt.ml.get_service(target, "legacy") is not None
    other = replace(target, credential=object())  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017 - any failure: it must not use the old read
        rt.ml.start_update(other, "legacy", app_insights=True)
    assert len(fresh_emulator.requests("mms.service_get")) == 1
    assert fresh_emulator.requests("mms.service_patch") == []


def test_a_v1_update_is_followed_by_reading_the_service_not_by_polling_its_operation(
    world: World, rt: Runtime, fresh_emulator: EmulatorHandle
) -> None:
    """The read that sees the service at rest also confirms the outcome: the decision's read
    (reused by update()), update()'s own read after its PATCH, and that one read; the
    operation is not asked, and the service is not read before it could have changed."""
    box: Sandbox = fresh_emulator.sandbox()
    box.add_service("legacy", compute_type="AKS", app_insights_enabled=False)
    wired = wire(world, rt, box)
    discovery.discover(rt, wired.workspace_id)
    fresh_emulator.state.services.operation_duration_s = 0.5
    add_policy(rt, wired.tenant)  # App Insights on
    settle_with_one_worker(rt, wired.tenant_id)
    (op,) = operations_of(rt, wired.tenant_id)
    assert (op.state, op.last_error) == ("succeeded", None)
    assert box.service("legacy")["appInsightsEnabled"] is True
    assert len(fresh_emulator.requests("mms.service_patch")) == 1
    assert len(fresh_emulator.requests("mms.service_get")) == 3
    assert fresh_emulator.requests("mms.operation") == []
