"""Policy rules without I/O: scope resolution, drift, compliance, retry delays."""

from __future__ import annotations

import pytest

from service.domain.capabilities import has_setting
from service.domain.capabilities import unsupported_reason as setting_unsupported
from service.domain.policy import (
    Compliance,
    ComplianceFacts,
    Observed,
    PolicySpec,
    Resolved,
    changes_needed,
    compliance,
    resolve,
    unsupported_reason,
    unsupported_settings,
)
from service.domain.retry import RetryPolicy

AKS_OFF = Observed("AKS", app_insights_enabled=False, data_collection_enabled=False)
NO_ACI_MDC = (
    "model data collection is not available on ACI web services "
    "(only on AKS and online deployments)"
)
ACI_OFF = Observed("ACI", app_insights_enabled=False, data_collection_enabled=None)


def test_each_field_comes_from_the_most_specific_scope_that_sets_it() -> None:
    policy = resolve(
        PolicySpec(app_insights=True, model_data_collection=False, mode="audit"),
        PolicySpec(model_data_collection=True),
        PolicySpec(app_insights=False),
    )
    assert policy.app_insights == Resolved(False, "endpoint")
    assert policy.model_data_collection == Resolved(True, "workspace")
    assert policy.mode == Resolved("audit", "tenant")


def test_without_any_policy_nothing_is_managed_and_the_mode_is_enforce() -> None:
    policy = resolve(None, None, None)
    assert policy.app_insights == Resolved(None, "default")
    assert policy.mode == Resolved("enforce", "default")
    assert changes_needed(policy, AKS_OFF) == {}


def test_drift_lists_only_the_settings_that_differ() -> None:
    policy = resolve(PolicySpec(app_insights=True, model_data_collection=False), None, None)
    assert changes_needed(policy, AKS_OFF) == {"app_insights": True}


def test_a_data_collection_default_is_unsupported_on_aci_not_compliant() -> None:
    policy = resolve(PolicySpec(model_data_collection=True), None, None)
    assert changes_needed(policy, ACI_OFF) == {}
    assert unsupported_settings(policy, "ACI") == {"model_data_collection": NO_ACI_MDC}
    assert compliance(ComplianceFacts(policy, ACI_OFF)) == (
        Compliance.UNSUPPORTED,
        NO_ACI_MDC,
    )


def test_data_collection_demanded_of_an_aci_endpoint_is_unsupported() -> None:
    policy = resolve(None, None, PolicySpec(model_data_collection=True))
    assert unsupported_reason(policy, "ACI") is not None
    state, _ = compliance(ComplianceFacts(policy, ACI_OFF))
    assert state is Compliance.UNSUPPORTED


def test_data_collection_off_is_met_by_an_aci_endpoint_and_on_is_supported_by_aks() -> None:
    off = resolve(PolicySpec(model_data_collection=False), None, None)
    assert compliance(ComplianceFacts(off, ACI_OFF)) == (Compliance.COMPLIANT, None)
    on = resolve(PolicySpec(model_data_collection=True), None, None)
    assert unsupported_settings(on, "AKS") == {}
    assert changes_needed(on, AKS_OFF) == {"model_data_collection": True}


def test_the_supported_settings_of_an_aci_endpoint_are_still_changed_and_come_first() -> None:
    policy = resolve(PolicySpec(app_insights=True, model_data_collection=True), None, None)
    # Only App Insights is ever queued: data collection does not exist on ACI.
    assert changes_needed(policy, ACI_OFF) == {"app_insights": True}
    state, reason = compliance(ComplianceFacts(policy, ACI_OFF))
    assert state is Compliance.DRIFTED
    assert reason is not None
    assert NO_ACI_MDC in reason
    assert compliance(ComplianceFacts(policy, ACI_OFF, operation_active=True))[0] is (
        Compliance.PENDING
    )
    met = Observed("ACI", app_insights_enabled=True, data_collection_enabled=None)
    assert compliance(ComplianceFacts(policy, met))[0] is Compliance.UNSUPPORTED


def test_capabilities_name_the_settings_each_kind_has() -> None:
    assert has_setting("AKS", "model_data_collection")
    assert has_setting("aks", "model_data_collection")
    assert not has_setting("ACI", "model_data_collection")
    assert has_setting("ACI", "app_insights")
    assert setting_unsupported("ACI", "model_data_collection", False) is None
    assert setting_unsupported("ACI", "model_data_collection", None) is None
    assert setting_unsupported("ACI", "app_insights", True) is None


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"observed": None}, Compliance.UNKNOWN),
        ({"access_broken": True}, Compliance.UNKNOWN),
        ({"operation_active": True}, Compliance.PENDING),
        ({"last_operation_failed": True}, Compliance.FAILED),
        ({}, Compliance.DRIFTED),
    ],
)
def test_compliance_states_follow_the_facts(facts: dict[str, object], expected: Compliance) -> None:
    policy = resolve(PolicySpec(app_insights=True), None, None)
    args = {"policy": policy, "observed": AKS_OFF, **facts}
    assert compliance(ComplianceFacts(**args))[0] is expected  # type: ignore[arg-type]


def test_an_endpoint_that_meets_its_policy_is_compliant_even_after_a_failure() -> None:
    policy = resolve(PolicySpec(app_insights=False), None, None)
    facts = ComplianceFacts(policy, AKS_OFF, last_operation_failed=True)
    assert compliance(facts) == (Compliance.COMPLIANT, None)


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    retry = RetryPolicy(base_s=1, max_s=60, max_attempts=5)
    assert [retry.delay_s(n, rand=lambda: 0.0) for n in (1, 2, 3, 4)] == [0.5, 1, 2, 4]
    assert [retry.delay_s(n, rand=lambda: 1.0) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert retry.delay_s(20, rand=lambda: 1.0) == 60


def test_retry_after_is_a_floor_spread_by_jitter() -> None:
    retry = RetryPolicy(base_s=0.1, max_s=60)
    assert retry.delay_s(1, retry_after_s=30, rand=lambda: 0.0) == 30
    assert retry.delay_s(1, retry_after_s=30, rand=lambda: 1.0) == 36
    # A server asking for more than our ceiling still wins: never retry earlier than asked.
    assert RetryPolicy(max_s=5).delay_s(1, retry_after_s=120, rand=lambda: 0.0) == 120


def test_only_temporary_errors_retry_and_only_until_the_attempts_are_spent() -> None:
    retry = RetryPolicy(max_attempts=3)
    assert retry.should_retry(2, temporary=True)
    assert not retry.should_retry(3, temporary=True)
    assert not retry.should_retry(1, temporary=False)
