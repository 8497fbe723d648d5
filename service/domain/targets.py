"""Governed targets and what each kind supports. Pure rules.

A target is one thing in Azure that carries monitoring settings: an SDK v1 web service (ACI or
AKS) or an SDK v2 online deployment (managed or Kubernetes). A v2 deployment's target name is
``{online endpoint}.{deployment}``: Azure allows neither ``.`` in endpoint nor in deployment
names, so the name is unambiguous, and a policy on the online endpoint's own name applies to
all of its deployments (the deployment's own policy overrides it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

SEPARATOR = "."


class TargetKind(StrEnum):
    ACI = "aci"
    AKS = "aks"
    MANAGED_ONLINE = "managed_online"
    KUBERNETES_ONLINE = "kubernetes_online"


class Follow(StrEnum):
    """The Azure operation a started change runs (its id is stored). The reconciler follows the
    change by reading the target; the operation is asked why when the target comes to rest
    still different from the policy."""

    MMS_OPERATION = "mms_operation"  # v1: GET .../operations/{id} (Operation-Location)
    AZURE_ASYNC_OPERATION = "azure_async_operation"  # v2: Azure-AsyncOperation status URL


@dataclass(frozen=True)
class Capabilities:
    """What a kind of target supports.

    ``rolls_instances``: applying a monitoring change replaces the target's serving instances;
    callers are shown this before they change a policy. v2: True. The change is a PUT of the
    whole deployment (PATCH takes only tags and sku), and "Deploy and score a model by using an
    online endpoint" (https://learn.microsoft.com/azure/machine-learning/how-to-deploy-online-
    endpoints, "(Optional) Update the deployment") calls such an update "an in-place rolling
    update": a managed deployment is updated 20% of its nodes at a time, a Kubernetes one by
    creating a new instance and deleting an old one, over and over. No source exempts
    ``appInsightsEnabled`` or ``dataCollector``; and the inference server reads its App
    Insights settings (AML_APP_INSIGHTS_ENABLED, AML_APP_INSIGHTS_KEY) once, at start
    (microsoft/azureml-inference-server, azureml_inference_server_http/server/config.py), so a
    running container could not pick the change up anyway. Not verified: whether Azure skips
    the roll when only these two fields change; until a source says so the cautious answer
    stands. ``max_parallel_scope``: changes to
    targets that share this group are limited by the policy's ``max_parallel_updates``.
    """

    kind: TargetKind
    fields: frozenset[str]
    reasons: tuple[tuple[str, str], ...]  # (field, why it is unsupported)
    rolls_instances: bool
    follow: Follow
    online: bool

    def supports(self, field: str) -> bool:
        return field in self.fields

    def reason(self, field: str, compute_type: str) -> str:
        for name, why in self.reasons:
            if name == field:
                return why.format(compute_type=compute_type)
        return f"{field} is not available on {compute_type}"


_BOTH = frozenset({"app_insights", "model_data_collection"})
CAPABILITIES: dict[TargetKind, Capabilities] = {
    TargetKind.ACI: Capabilities(
        TargetKind.ACI,
        frozenset({"app_insights"}),
        (
            (
                "model_data_collection",
                "model data collection is not available on {compute_type} web services",
            ),
        ),
        rolls_instances=False,
        follow=Follow.MMS_OPERATION,
        online=False,
    ),
    TargetKind.AKS: Capabilities(
        TargetKind.AKS, _BOTH, (), rolls_instances=False, follow=Follow.MMS_OPERATION, online=False
    ),
    TargetKind.MANAGED_ONLINE: Capabilities(
        TargetKind.MANAGED_ONLINE,
        _BOTH,
        (),
        rolls_instances=True,
        follow=Follow.AZURE_ASYNC_OPERATION,
        online=True,
    ),
    TargetKind.KUBERNETES_ONLINE: Capabilities(
        TargetKind.KUBERNETES_ONLINE,
        _BOTH,
        (),
        rolls_instances=True,
        follow=Follow.AZURE_ASYNC_OPERATION,
        online=True,
    ),
}


def capabilities(kind: str) -> Capabilities:
    """The capabilities of a kind (an unknown kind supports nothing new: like ACI)."""
    found = _BY_VALUE.get(kind)
    return CAPABILITIES[TargetKind.ACI] if found is None else found


# A str enum's members equal and hash as their values: a plain string finds its kind without
# building the member first (a page of 200 endpoints asked 200 times).
_BY_VALUE: dict[str, Capabilities] = {kind.value: caps for kind, caps in CAPABILITIES.items()}


def v1_kind(compute_type: str) -> TargetKind:
    """The kind of a v1 web service: AKS, or ACI-like for every other compute type (no model
    data collection, as before kinds existed)."""
    return TargetKind.AKS if compute_type.upper() == "AKS" else TargetKind.ACI


def online_kind(endpoint_compute_type: str) -> TargetKind:
    return (
        TargetKind.KUBERNETES_ONLINE
        if endpoint_compute_type.lower() == "kubernetes"
        else TargetKind.MANAGED_ONLINE
    )


def kind_for(compute_type: str) -> TargetKind:
    """The kind of a target from its recorded compute type (v1 ``AKS``/``ACI``, v2
    ``Managed``/``Kubernetes``)."""
    lowered = compute_type.lower()
    if lowered in ("managed", "kubernetes"):
        return online_kind(compute_type)
    return v1_kind(compute_type)


def deployment_target(endpoint: str, deployment: str) -> str:
    return f"{endpoint}{SEPARATOR}{deployment}"


def split_target(name: str) -> tuple[str, str] | None:
    """(online endpoint, deployment) of a v2 target name, or None for a v1 service name."""
    endpoint, sep, deployment = name.partition(SEPARATOR)
    return (endpoint, deployment) if sep and endpoint and deployment else None
