"""What each kind of endpoint can be asked to do: the monitoring settings it has. Pure rules.

A policy may ask for a setting an endpoint's kind does not have. That part of the policy is
``unsupported`` there (shown with the reason, never queued as an operation); the other settings
are still applied. Asking for a setting to be *off* where it does not exist is met by nature.

Facts (azureml-core 1.x, MMS service documents): ``AksWebservice`` reads ``dataCollection``
into ``data_collection`` and ``AksWebservice.update`` takes ``collect_model_data``. On ACI the
flag exists only in the deployment configuration: ``AciWebservice`` neither reports it nor takes
it in ``update``, so model data collection on an existing ACI web service can be neither
observed nor changed. Both kinds report and update ``enable_app_insights``.
"""

from __future__ import annotations

# The monitoring settings a policy can manage, each a switch (True = on).
SETTINGS = ("app_insights", "model_data_collection")

# The endpoint kinds (compute types, upper case) that have each setting; a setting missing here
# exists on every kind. Add a kind to the set when it gains the setting.
_ONLY_ON: dict[str, frozenset[str]] = {
    "model_data_collection": frozenset({"AKS"}),
}

_NAMES = {
    "app_insights": "Application Insights",
    "model_data_collection": "model data collection",
}


def has_setting(compute_type: str, setting: str) -> bool:
    """True when endpoints of this kind have the setting at all."""
    kinds = _ONLY_ON.get(setting)
    return kinds is None or compute_type.upper() in kinds


def unsupported_reason(compute_type: str, setting: str, wanted: bool | None) -> str | None:
    """Why ``wanted`` cannot be met on this kind of endpoint, or None when it can."""
    if wanted is not True or has_setting(compute_type, setting):
        return None
    kinds = ", ".join(sorted(_ONLY_ON[setting]))
    name = _NAMES.get(setting, setting)
    return f"{name} is not available on {compute_type} web services (only on {kinds})"
