"""The baseline of ``bench.reconcile_converge``: the loop the source document implies.

``Webservice(ws, name).update(enable_app_insights=True)`` then ``wait_for_deployment()``, one
endpoint after another, with azureml-core's own behaviour (its retries, its 5 s polling sleep).
"""

from __future__ import annotations

import time
from typing import Any


def sp_credential(url: str, ca: str, row: dict[str, str]) -> Any:
    """The fleet row's service principal, against the emulator's authority."""
    from azure.identity import ClientSecretCredential

    return ClientSecretCredential(
        row["tenant"],
        row["client_id"],
        row["secret"],
        authority=url,
        disable_instance_discovery=True,
        connection_verify=ca,
    )


def v1_workspace(url: str, credential: Any, row: dict[str, str]) -> Any:
    """azureml-core's ``Workspace`` of the fleet row (resource group ``rg-bench``)."""
    from azureml.core import Workspace

    from service.adapters.azureml_auth import token_credential_authentication

    auth = token_credential_authentication(credential, resource_manager_url=url)
    return Workspace(row["subscription"], "rg-bench", row["workspace"], auth=auth)


def arm_client(url: str, ca: str, credential: Any, row: dict[str, str]) -> Any:
    """azure-ai-ml's ARM client for the row's subscription, at the online deployments'
    api-version."""
    from azure.ai.ml._restclient.arm_ml_service import MachineLearningServicesMgmtClient

    from service.adapters.azure_ai_ml import deployment_api_version

    return MachineLearningServicesMgmtClient(
        credential=credential,
        subscription_id=row["subscription"],
        base_url=url,
        api_version=deployment_api_version(),
        credential_scopes=["https://management.azure.com/.default"],
        connection_verify=ca,
    )


def sequential_sample(url: str, ca: str, row: dict[str, str], sample: int) -> float:
    """Seconds per endpoint, measured over ``sample`` services of the baseline workspace."""
    import azureml._restclient.clientbase as clientbase
    from azureml.core.webservice import Webservice

    clientbase.DEFAULT_RETRIES = 3  # the SDK as shipped (the service runs it with 0)
    ws = v1_workspace(url, sp_credential(url, ca, row), row)
    started = time.monotonic()
    for i in range(sample):
        service = Webservice(ws, f"base-{i:03d}")
        service.update(enable_app_insights=True)
        service.wait_for_deployment()
    return (time.monotonic() - started) / sample


def sequential_online_sample(url: str, ca: str, row: dict[str, str], sample: int) -> float:
    """Seconds per online deployment: GET, set ``appInsightsEnabled``, PUT and wait for the
    long-running operation (azure-ai-ml's ARM client with its own poller), one after another.
    The poller is given a 1 s interval (its default is 30 s), which only favours the baseline."""
    client = arm_client(url, ca, sp_credential(url, ca, row), row)
    started = time.monotonic()
    for i in range(sample):
        endpoint = f"base-oe-{i:03d}"
        doc = client.online_deployments.get("rg-bench", row["workspace"], endpoint, "blue")
        body = doc.as_dict()
        body["properties"]["appInsightsEnabled"] = True
        poller = client.online_deployments.begin_create_or_update(
            "rg-bench", row["workspace"], endpoint, "blue", body, polling_interval=1
        )
        poller.result()
    return (time.monotonic() - started) / sample
