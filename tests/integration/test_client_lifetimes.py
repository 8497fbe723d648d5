"""Adapters close the SDK clients they keep: a dropped runtime leaves no socket to the collector.

CI once failed on a ResourceWarning ("Exception ignored in: <ssl.SSLSocket ...>") raised inside an
unrelated test: an adapter of an earlier test's runtime had been collected with its clients'
connection pools still open. Each adapter here talks to the emulator through the real SDK, is
dropped (or closed), and the collector must find no open socket.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from emulator.testing import EmulatorHandle, Sandbox
from service.adapters.azure_ai_ml import AzureOnlineDeployments
from service.adapters.azureml import AzureMlControlPlane
from service.adapters.data_export import AzureDataExports
from service.adapters.logs import AzureLogs
from service.ports import LogQuerySpec, LogTarget, MlTarget
from tests.support.api import emulator_azure_settings


def _target(sandbox: Sandbox, credential: Any) -> MlTarget:
    return MlTarget(
        "tenant", credential, sandbox.subscription_id, sandbox.resource_group,
        sandbox.workspace_name,
    )  # fmt: skip


def _use_logs(emulator: EmulatorHandle, sandbox: Sandbox, credential: Any) -> Any:
    adapter = AzureLogs(emulator_azure_settings(emulator))
    resource = sandbox.app_insights_resource_id
    assert resource is not None
    adapter.query(credential, LogTarget("resource", resource), LogQuerySpec("print 1", None, 30))
    return adapter


def _use_exports(emulator: EmulatorHandle, sandbox: Sandbox, credential: Any) -> Any:
    adapter = AzureDataExports(emulator_azure_settings(emulator))
    adapter.find_workspace(credential, sandbox.subscription_id, "00000000-0000-0000-0000-0")
    return adapter


def _use_v1(emulator: EmulatorHandle, sandbox: Sandbox, credential: Any) -> Any:
    adapter = AzureMlControlPlane(emulator_azure_settings(emulator))
    adapter.list_services(_target(sandbox, credential))
    return adapter


def _use_v2(emulator: EmulatorHandle, sandbox: Sandbox, credential: Any) -> Any:
    adapter = AzureOnlineDeployments(emulator_azure_settings(emulator))
    adapter.list_services(_target(sandbox, credential))
    return adapter


ADAPTERS: dict[str, Callable[[EmulatorHandle, Sandbox, Any], Any]] = {
    "logs": _use_logs,
    "data_export": _use_exports,
    "azureml_v1": _use_v1,
    "azure_ai_ml_v2": _use_v2,
}


def _socket_warnings(drop: Callable[[], None]) -> list[str]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        drop()
        gc.collect()
    return [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)]


@pytest.mark.parametrize("kind", sorted(ADAPTERS))
@pytest.mark.parametrize("how", ["dropped", "closed"])
def test_an_adapter_leaves_no_open_socket(
    emulator: EmulatorHandle, sandbox: Sandbox, kind: str, how: str
) -> None:
    credential = sandbox.credential()
    holder = {"adapter": ADAPTERS[kind](emulator, sandbox, credential)}
    credential.close()  # the credential's own token client is the identity adapter's to close
    gc.collect()  # whatever the calls left behind before the adapter goes

    def drop() -> None:
        if how == "closed":
            holder["adapter"].close()
        holder.clear()

    assert _socket_warnings(drop) == []
