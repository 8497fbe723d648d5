"""What each kind of endpoint can be asked to do: the monitoring settings it has. Pure rules.

A policy may ask for a setting an endpoint's kind does not have. That part of the policy is
``unsupported`` there (shown with the reason, never queued as an operation); the other settings
are still applied. Asking for a setting to be *off* where it does not exist is met by nature.

The kinds and what each supports live in ``service.domain.targets`` (``CAPABILITIES``); this
module answers by compute type, which is what an observed endpoint records (v1 ``AKS``/``ACI``,
v2 ``Managed``/``Kubernetes``).

Facts (azureml-core 1.x, MMS service documents): ``AksWebservice`` reads ``dataCollection``
into ``data_collection`` and ``AksWebservice.update`` takes ``collect_model_data``. On ACI the
flag exists only in the deployment configuration: ``AciWebservice`` neither reports it nor takes
it in ``update``, so model data collection on an existing ACI web service can be neither
observed nor changed. Both kinds report and update ``enable_app_insights``. SDK v2 online
deployments (managed and Kubernetes) have ``appInsightsEnabled`` and a data collector
(mfe.json 2023-04-01-preview ``OnlineDeployment``).
"""

from __future__ import annotations

from service.domain.targets import CAPABILITIES, TargetKind, capabilities, kind_for

# The monitoring settings a policy can manage, each a switch (True = on).
SETTINGS = ("app_insights", "model_data_collection")

_KINDS = {
    TargetKind.ACI: "ACI",
    TargetKind.AKS: "AKS",
    TargetKind.MANAGED_ONLINE: "online deployments",
    TargetKind.KUBERNETES_ONLINE: "online deployments",
}
_NAMES = {
    "app_insights": "Application Insights",
    "model_data_collection": "model data collection",
}


def has_setting(compute_type: str, setting: str) -> bool:
    """True when endpoints of this kind have the setting at all."""
    return capabilities(kind_for(compute_type)).supports(setting)


def unsupported_reason(compute_type: str, setting: str, wanted: bool | None) -> str | None:
    """Why ``wanted`` cannot be met on this kind of endpoint, or None when it can."""
    if wanted is not True or has_setting(compute_type, setting):
        return None
    labels = [_KINDS[k] for k, caps in CAPABILITIES.items() if caps.supports(setting)]
    kinds = " and ".join(dict.fromkeys(labels))
    name = _NAMES.get(setting, setting)
    return f"{name} is not available on {compute_type} web services (only on {kinds})"
