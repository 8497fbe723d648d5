"""A v1 web service update reads the service first (azureml-core ``Webservice(ws, name)``); a
throttled read is retried in place after Azure's short Retry-After instead of failing the
reconciler's attempt (``azure_calls.retry_read``), and the PATCH is still sent once."""

from __future__ import annotations

import pytest

from emulator.testing import EmulatorHandle, Sandbox
from service.config import Settings
from service.db.models import Workspace
from service.db.session import Database
from service.services.discovery import target_of
from service.services.runtime import Runtime
from tests.support.api import World
from tests.support.reconcile import fast_runtime, wire


@pytest.fixture
def rt(settings: Settings, database: Database, fresh_emulator: EmulatorHandle) -> Runtime:
    return fast_runtime(settings, database, fresh_emulator, call_timeout_s=10.0)


def test_a_throttled_read_before_the_patch_is_retried_in_place(
    world: World, rt: Runtime, fresh_emulator: EmulatorHandle
) -> None:
    box: Sandbox = fresh_emulator.sandbox()
    box.add_service("legacy", compute_type="AKS", app_insights_enabled=False)
    wired = wire(world, rt, box)
    with rt.uow() as uow:
        ws = uow.session.get(Workspace, wired.workspace_id)
        assert ws is not None
        uow.session.expunge(ws)
    target = target_of(rt, ws)
    fresh_emulator.add_fault("throttle", "mms.service_get", retry_after_s=1, count=1)
    rt.ml.start_update(target, "legacy", app_insights=True)
    throttled, retried, *_ = fresh_emulator.requests("mms.service_get")
    assert (throttled.status, retried.status) == (429, 200)
    assert retried.time - throttled.time >= 1.0  # Azure's Retry-After
    assert len(fresh_emulator.requests("mms.service_patch")) == 1
