"""The ML control-plane port over both SDKs: v1 web services (azureml-core) and v2 online
deployments (azure-ai-ml), dispatched by target name (``{endpoint}.{deployment}`` is v2).

Each SDK stays behind its own adapter, imported lazily; the use cases see one port that speaks
in targets and says what each kind supports (``service.domain.targets``).
"""

from __future__ import annotations

from typing import Any

from service.adapters.azure_ai_ml import AzureOnlineDeployments
from service.adapters.azureml import AzureMlControlPlane
from service.domain.targets import Capabilities, capabilities, split_target
from service.ports import AzureOperationStatus, MlTarget, ServiceSnapshot


def preload() -> None:
    """Import both ML SDKs now. Called where a process starts (gunicorn.conf.py
    ``post_worker_init``), not on the first request that needs one: the imports take seconds
    of CPU holding the GIL, and in a gevent worker every other request waits meanwhile
    (``bench/sdk_import.py``). The adapters still import lazily, so processes that never call
    this (tests, tools) pay nothing."""
    import azure.ai.ml  # noqa: F401
    import azureml.core.webservice  # noqa: F401
    from azure.ai.ml._restclient.arm_ml_service import (  # noqa: F401
        MachineLearningServicesMgmtClient,
    )


class MlTargets:
    """Implements ``service.ports.MlControlPlane`` for every kind of target."""

    def __init__(self, v1: AzureMlControlPlane, v2: AzureOnlineDeployments) -> None:
        self.v1 = v1
        self.v2 = v2

    def close(self) -> None:
        self.v1.close()
        self.v2.close()

    def capabilities(self, kind: str) -> Capabilities:
        return capabilities(kind)

    def _for(self, name: str) -> Any:
        return self.v2 if split_target(name) is not None else self.v1

    def list_services(self, target: MlTarget) -> list[ServiceSnapshot]:
        # Both listings must succeed: a partial listing would mark the rest vanished. One after
        # the other: run beside the v1 listing, the v2 one's first client build (CPU holding
        # the GIL) made the v1 calls miss their deadlines on a loaded machine.
        return [*self.v1.list_services(target), *self.v2.list_services(target)]

    def get_service(self, target: MlTarget, name: str) -> ServiceSnapshot | None:
        snapshot: ServiceSnapshot | None = self._for(name).get_service(target, name)
        return snapshot

    def start_update(
        self,
        target: MlTarget,
        name: str,
        *,
        app_insights: bool | None = None,
        model_data_collection: bool | None = None,
        expected_version: str | None = None,
        send_by: float | None = None,
    ) -> str:
        if split_target(name) is not None:
            return self.v2.start_update(
                target,
                name,
                app_insights=app_insights,
                model_data_collection=model_data_collection,
                expected_version=expected_version,
                send_by=send_by,
            )
        # v1 PATCHes single values (JSON patch): nothing else of the service is written back.
        return self.v1.start_update(
            target,
            name,
            app_insights=app_insights,
            model_data_collection=model_data_collection,
            send_by=send_by,
        )

    def operation_status(
        self, target: MlTarget, name: str, operation_id: str
    ) -> AzureOperationStatus:
        status: AzureOperationStatus = self._for(name).operation_status(target, name, operation_id)
        return status

    def telemetry_roles(self, target: MlTarget, online_endpoint: str) -> dict[str, str | None]:
        return self.v2.telemetry_roles(target, online_endpoint)

    def get_logs(self, target: MlTarget, name: str, tail: int) -> str:
        return str(self._for(name).get_logs(target, name, tail))
