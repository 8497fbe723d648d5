"""The CA bundle the service is configured with (``AZURE_CA_BUNDLE``) is the one every Azure SDK
trusts, azureml-core included, and azureml-core gets it as a directory (it opens a connection
per call: ``service.adapters.trust``)."""

from __future__ import annotations

import os

import pytest

from emulator.testing import EmulatorHandle, Sandbox
from service.services.runtime import Runtime
from tests.support.api import World
from tests.support.reconcile import (
    ml_target,
    sdk_runtime,  # noqa: F401 - the `rt` fixture
    wire,
)


def test_azureml_core_trusts_the_configured_ca_bundle_without_requests_variables(
    world: World,
    rt: Runtime,
    fresh_emulator: EmulatorHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box: Sandbox = fresh_emulator.sandbox()
    box.add_service("legacy", compute_type="ACI", app_insights_enabled=False)
    wired = wire(world, rt, box)
    assert rt.settings.azure.ca_bundle == str(fresh_emulator.ca_path)
    # A deployment that sets AZURE_CA_BUNDLE only (the README's one setting for it): before,
    # azureml-core read REQUESTS_CA_BUNDLE alone and so trusted certifi, not the emulator.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)

    snapshot = rt.ml.get_service(ml_target(rt, wired.workspace_id), "legacy")

    assert snapshot is not None
    assert snapshot.name == "legacy"
    assert os.path.isdir(os.environ["REQUESTS_CA_BUNDLE"])
