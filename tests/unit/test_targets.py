"""Target kinds, what each supports, and the online-endpoint policy layer. Pure rules."""

from __future__ import annotations

import pytest

from service.domain.capabilities import has_setting, unsupported_reason
from service.domain.policy import Observed, PolicySpec, changes_needed, resolve
from service.domain.targets import (
    TargetKind,
    capabilities,
    deployment_target,
    kind_for,
    split_target,
)


@pytest.mark.parametrize(
    ("compute", "kind"),
    [
        ("AKS", TargetKind.AKS),
        ("aci", TargetKind.ACI),
        ("AMLCOMPUTE", TargetKind.ACI),
        ("Managed", TargetKind.MANAGED_ONLINE),
        ("Kubernetes", TargetKind.KUBERNETES_ONLINE),
    ],
)
def test_every_compute_type_maps_to_one_kind(compute: str, kind: TargetKind) -> None:
    assert kind_for(compute) is kind


def test_only_online_kinds_roll_instances_and_follow_an_async_operation() -> None:
    assert [k for k in TargetKind if capabilities(k).rolls_instances] == [
        TargetKind.MANAGED_ONLINE,
        TargetKind.KUBERNETES_ONLINE,
    ]
    assert capabilities("aks").follow.value == "mms_operation"
    assert capabilities("kubernetes_online").follow.value == "azure_async_operation"


def test_model_data_collection_exists_everywhere_but_on_aci() -> None:
    assert [
        c
        for c in ("ACI", "AKS", "Managed", "Kubernetes")
        if has_setting(c, "model_data_collection")
    ] == [
        "AKS",
        "Managed",
        "Kubernetes",
    ]
    assert unsupported_reason("Managed", "model_data_collection", True) is None
    reason = unsupported_reason("ACI", "model_data_collection", True)
    assert reason is not None
    assert "online deployments" in reason


def test_a_deployment_target_name_splits_back_and_a_service_name_does_not() -> None:
    assert split_target(deployment_target("churn", "blue")) == ("churn", "blue")
    assert split_target("churn-svc") is None
    assert split_target(".blue") is None


def test_a_deployment_policy_overrides_its_online_endpoint_field_by_field() -> None:
    effective = resolve(
        PolicySpec(mode="audit"),
        PolicySpec(app_insights=False),
        PolicySpec(app_insights=True, model_data_collection=True, max_parallel_updates=3),
        PolicySpec(model_data_collection=False),
    )
    assert effective.as_dict() == {
        "app_insights": {"value": True, "source": "endpoint"},
        "model_data_collection": {"value": False, "source": "deployment"},
        "mode": {"value": "audit", "source": "tenant"},
        "max_parallel_updates": {"value": 3, "source": "endpoint"},
    }
    assert effective.parallel_updates == 3
    assert resolve(None, None, None).parallel_updates == 1


def test_a_v2_deployment_drifts_on_both_fields() -> None:
    policy = resolve(PolicySpec(app_insights=True, model_data_collection=True), None, None)
    assert changes_needed(policy, Observed("Kubernetes", False, False)) == {
        "app_insights": True,
        "model_data_collection": True,
    }
    assert changes_needed(policy, Observed("ACI", False, None)) == {"app_insights": True}
