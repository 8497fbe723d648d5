"""The baseline of ``bench.reconcile_converge``: the loop the source document implies.

``Webservice(ws, name).update(enable_app_insights=True)`` then ``wait_for_deployment()``, one
endpoint after another, with azureml-core's own behaviour (its retries, its 5 s polling sleep).
"""

from __future__ import annotations

import time
from typing import Any


def sequential_sample(url: str, ca: str, row: dict[str, str], sample: int) -> float:
    """Seconds per endpoint, measured over ``sample`` services of the baseline workspace."""
    import azureml._restclient.clientbase as clientbase
    from azure.identity import ClientSecretCredential
    from azureml.core import Workspace
    from azureml.core.webservice import Webservice

    from service.adapters.azureml_auth import token_credential_authentication

    clientbase.DEFAULT_RETRIES = 3  # the SDK as shipped (the service runs it with 0)
    credential: Any = ClientSecretCredential(
        row["tenant"],
        row["client_id"],
        row["secret"],
        authority=url,
        disable_instance_discovery=True,
        connection_verify=ca,
    )
    auth = token_credential_authentication(credential, resource_manager_url=url)
    ws = Workspace(row["subscription"], "rg-bench", row["workspace"], auth=auth)
    started = time.monotonic()
    for i in range(sample):
        service = Webservice(ws, f"base-{i:03d}")
        service.update(enable_app_insights=True)
        service.wait_for_deployment()
    return (time.monotonic() - started) / sample
