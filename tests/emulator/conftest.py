"""Helpers for the emulator's own tests (the fixtures live in emulator.pytest_plugin)."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.testing import EmulatorHandle, Sandbox


def aml_workspace(emulator: EmulatorHandle, box: Sandbox) -> Any:
    """An azureml-core Workspace for the sandbox, authenticated through the product's adapter."""
    from azureml.core import Workspace

    from service.adapters.azureml_auth import token_credential_authentication

    auth = token_credential_authentication(
        box.credential(), resource_manager_url=emulator.arm_endpoint
    )
    return Workspace(box.subscription_id, box.resource_group, box.workspace_name, auth=auth)


@pytest.fixture
def workspace(emulator: EmulatorHandle, sandbox: Sandbox) -> Any:
    """azureml-core Workspace over the shared emulator, in this test's own sandbox."""
    return aml_workspace(emulator, sandbox)
