"""Retention policy rules: inheritance, Azure's data export limits, unsupported tables, plans."""

from __future__ import annotations

import pytest

from service.domain.retention import (
    DEFAULT_TABLES,
    MANAGED_RULE,
    ObservedRule,
    RetentionSpec,
    destination_type,
    plan,
    resolve,
    rule_name_problem,
    unsupported_table_reason,
    unsupported_tables,
    validate_spec,
)

SUB = "0f6c2a1e-1b2c-4d3e-8f4a-5b6c7d8e9f01"
GROUP = f"/subscriptions/{SUB}/resourceGroups/rg-keep/providers"
STORAGE = f"{GROUP}/Microsoft.Storage/storageAccounts/keepsa"
OTHER = f"{GROUP}/Microsoft.Storage/storageAccounts/othersa"
HUBS = (
    f"/subscriptions/{SUB}/resourceGroups/rg-keep/providers/Microsoft.EventHub/namespaces/keep-hubs"
)


def _rule(name: str, destination: str = OTHER, enabled: bool = True) -> ObservedRule:
    return ObservedRule(name, destination, ("AppTraces",), enabled)


def test_workspace_fields_win_and_unset_ones_inherit_with_provenance() -> None:
    tenant = RetentionSpec(destination_resource_id=STORAGE, mode="audit")
    workspace = RetentionSpec(tables=("AppRequests",))
    policy = resolve(tenant, workspace)
    assert policy.as_dict() == {
        "destination_resource_id": {"value": STORAGE, "source": "tenant"},
        "tables": {"value": ["AppRequests"], "source": "workspace"},
        "enabled": {"value": True, "source": "default"},
        "mode": {"value": "audit", "source": "tenant"},
        "remove_unmanaged": {"value": False, "source": "default"},
    }


def test_no_destination_anywhere_means_nothing_is_managed() -> None:
    policy = resolve(None, RetentionSpec(tables=("AppTraces",)))
    assert not policy.managed
    assert plan(policy, [_rule("someone-elses")]).empty


def test_the_default_tables_are_the_four_app_tables() -> None:
    assert resolve(RetentionSpec(destination_resource_id=STORAGE), None).tables.value == (
        "AppRequests",
        "AppTraces",
        "AppDependencies",
        "AppExceptions",
    )
    assert all(unsupported_table_reason(t) is None for t in DEFAULT_TABLES)


@pytest.mark.parametrize(
    ("name", "ok"),
    [("abcd", True), ("abc", False), ("1abc", False), ("abc-", False), ("a" * 64, False)],
)
def test_rule_names_follow_azures_pattern(name: str, ok: bool) -> None:
    assert (rule_name_problem(name) is None) is ok
    assert rule_name_problem(MANAGED_RULE) is None


def test_destinations_are_storage_accounts_or_event_hubs_namespaces() -> None:
    assert destination_type(STORAGE) == "StorageAccount"
    assert destination_type(HUBS) == "EventHub"
    assert destination_type(f"/subscriptions/{SUB}/resourceGroups/rg/providers/X.Y/z/w") is None
    errors = validate_spec({"destination_resource_id": "not-an-id", "tables": []})
    assert [e["field"] for e in errors] == ["body.destination_resource_id", "body.tables"]
    assert validate_spec({"tables": ["AppTraces", "AppTraces"]})[0]["message"] == (
        "lists a table twice"
    )


def test_tables_azure_accepts_but_does_not_export_are_flagged_with_the_reason() -> None:
    policy = resolve(
        RetentionSpec(
            destination_resource_id=HUBS, tables=("AppTraces", "requests", "Custom_" + "x" * 45)
        ),
        None,
    )
    flagged = unsupported_tables(policy)
    assert sorted(flagged) == ["Custom_" + "x" * 45, "requests"]
    assert "47" in flagged["Custom_" + "x" * 45]
    assert "classic" in flagged["requests"]


def test_a_matching_managed_rule_needs_no_write_and_a_disabled_one_is_put_back() -> None:
    policy = resolve(RetentionSpec(destination_resource_id=STORAGE), None)
    ours = ObservedRule(MANAGED_RULE, STORAGE.upper(), tuple(reversed(DEFAULT_TABLES)), True)
    assert plan(policy, [ours]).empty
    disabled = ObservedRule(MANAGED_RULE, STORAGE, DEFAULT_TABLES, False)
    repaired = plan(policy, [disabled])
    assert repaired.put is not None
    assert repaired.put.enabled
    assert repaired.problem is None


def test_rules_nobody_created_through_us_are_kept_unless_the_policy_says_remove() -> None:
    keep = resolve(RetentionSpec(destination_resource_id=STORAGE), None)
    assert plan(keep, [_rule("hand-made")]).delete == ()
    remove = resolve(RetentionSpec(destination_resource_id=STORAGE, remove_unmanaged=True), None)
    assert plan(remove, [_rule("hand-made")]).delete == ("hand-made",)


def test_an_eleventh_enabled_rule_is_refused_before_any_call() -> None:
    policy = resolve(RetentionSpec(destination_resource_id=STORAGE), None)
    ten = [_rule(f"rule-{i}", destination=f"{OTHER}{i}") for i in range(10)]
    assert "at most 10" in (plan(policy, ten).problem or "")
    one_disabled = [*ten[:9], _rule("rule-9", destination=f"{OTHER}9", enabled=False)]
    assert plan(policy, one_disabled).problem is None
    as_disabled = resolve(RetentionSpec(destination_resource_id=STORAGE, enabled=False), None)
    assert plan(as_disabled, ten).problem is None


def test_a_storage_account_another_rule_uses_is_refused_before_any_call() -> None:
    policy = resolve(RetentionSpec(destination_resource_id=STORAGE), None)
    problem = plan(policy, [_rule("hand-made", destination=STORAGE)]).problem
    assert problem is not None
    assert "hand-made" in problem
    removing = resolve(RetentionSpec(destination_resource_id=STORAGE, remove_unmanaged=True), None)
    assert plan(removing, [_rule("hand-made", destination=STORAGE)]).problem is None
