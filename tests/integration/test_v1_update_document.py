"""What a v1 web service update sends: only the monitoring change, nothing of the control
plane's own host (azureml-core's ``update()`` would add what ``git`` finds in the working
directory to the tenant's service properties)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from emulator.testing import EmulatorHandle, Sandbox
from service.services.runtime import Runtime
from tests.support.api import World
from tests.support.reconcile import (
    ml_target,
    sdk_runtime,  # noqa: F401 - the `rt` fixture
    wire,
)


def test_an_update_adds_nothing_of_the_service_s_own_repository_to_the_web_service(
    world: World,
    rt: Runtime,
    fresh_emulator: EmulatorHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The service runs from a Git checkout (as in development, CI and many deployments).
    repo = tmp_path / "control-plane"
    repo.mkdir()
    for args in (
        ["init", "-q", "-b", "release"],
        ["remote", "add", "origin", "https://git.example.invalid/platform/control-plane.git"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    box: Sandbox = fresh_emulator.sandbox()
    box.add_service("legacy", compute_type="ACI", app_insights_enabled=False)
    wired = wire(world, rt, box)

    rt.ml.start_update(ml_target(rt, wired.workspace_id), "legacy", app_insights=True)

    service = box.service("legacy")
    assert service["appInsightsEnabled"] is True
    assert service["properties"] == {"hasInferenceSchema": "False", "hasHttps": "False"}
