"""Retention policy: Log Analytics data export rules as desired state. Pure rules.

A retention policy (tenant or workspace scope; the workspace's fields win, field by field) says
where a registered workspace's Log Analytics workspace exports its tables: a storage account or
an Event Hubs namespace, the tables (default the four App* tables), enabled or not, and the mode.
The service manages one rule per Log Analytics workspace, named ``MANAGED_RULE``; rules it did not
create are observed and reported, and deleted only when the policy says ``remove_unmanaged``.

Azure's rules ("Log Analytics workspace data export", Limitations; DataExports.json) checked
before any call: a rule name of 4-63 characters matching ``^[A-Za-z][A-Za-z0-9-]+[A-Za-z0-9]$``;
at most 10 enabled rules per workspace; a destination that is a storage account or an Event Hubs
namespace, in the workspace's region; one rule per storage account. Tables Azure accepts but does
not export (not in the supported list, or a name longer than 60 characters for storage, 47 for
Event Hubs) are reported ``unsupported`` with the reason, never refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DEFAULT_TABLES = ("AppRequests", "AppTraces", "AppDependencies", "AppExceptions")
MANAGED_RULE = "amlcp-retention"
RULE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]+[A-Za-z0-9]$")
MAX_ENABLED_RULES = 10
MAX_TABLE_NAME = {"StorageAccount": 60, "EventHub": 47}
FIELDS = ("destination_resource_id", "tables", "enabled", "mode", "remove_unmanaged")
# From the documented "Supported tables" list: the App* tables and common ones.
EXPORTABLE_TABLES = frozenset(
    {
        "AppAvailabilityResults",
        "AppBrowserTimings",
        "AppDependencies",
        "AppEvents",
        "AppExceptions",
        "AppMetrics",
        "AppPageViews",
        "AppPerformanceCounters",
        "AppRequests",
        "AppSystemEvents",
        "AppTraces",
        "AzureActivity",
        "AzureDiagnostics",
        "ContainerLog",
        "ContainerLogV2",
        "Event",
        "Heartbeat",
        "Perf",
        "SecurityEvent",
        "Syslog",
    }
)
_CLASSIC = {"requests", "traces", "dependencies", "exceptions", "customevents", "pageviews"}
_STORAGE = re.compile(
    r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w.()]{1,90}/providers/"
    r"Microsoft\.Storage/storageAccounts/[a-z0-9]{3,24}$",
    re.IGNORECASE,
)
_EVENT_HUBS = re.compile(
    r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w.()]{1,90}/providers/"
    r"Microsoft\.EventHub/namespaces/[A-Za-z][A-Za-z0-9-]{4,48}[A-Za-z0-9]$",
    re.IGNORECASE,
)
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


def destination_type(resource_id: str) -> str | None:
    """``StorageAccount``, ``EventHub`` or None for anything else."""
    if _STORAGE.match(resource_id):
        return "StorageAccount"
    if _EVENT_HUBS.match(resource_id):
        return "EventHub"
    return None


def rule_name_problem(name: str) -> str | None:
    """Why Azure would refuse this rule name, or None."""
    if not 4 <= len(name) <= 63:
        return "must be 4-63 characters long"
    if not RULE_NAME.match(name):
        return (
            "must start with a letter, hold letters, digits or hyphens and end with a letter "
            "or digit"
        )
    return None


def unsupported_table_reason(table: str, destination: str = "StorageAccount") -> str | None:
    """Why Azure accepts but does not export `table`, or None when it is exported."""
    limit = MAX_TABLE_NAME.get(destination, 60)
    if len(table) > limit:
        return f"names longer than {limit} characters are not exported to {destination}"
    if table.lower() in _CLASSIC:
        return "a classic Application Insights name: data export exports workspace tables (App*)"
    if table not in EXPORTABLE_TABLES:
        return "not in the tables Log Analytics data export supports"
    return None


def validate_spec(data: dict[str, Any]) -> list[dict[str, str]]:
    """Field errors of a policy body (empty: valid). Types are already checked by the schema."""
    errors = []
    destination = data.get("destination_resource_id")
    if destination is not None and destination_type(destination) is None:
        errors.append(
            {
                "field": "body.destination_resource_id",
                "message": "must be a storage account or Event Hubs namespace resource id",
            }
        )
    tables = data.get("tables")
    if tables is not None:
        if not tables:
            errors.append({"field": "body.tables", "message": "must name at least one table"})
        bad = [t for t in tables if not _TABLE.match(t)]
        if bad:
            errors.append({"field": "body.tables", "message": f"not table names: {bad}"})
        if len(set(tables)) != len(tables):
            errors.append({"field": "body.tables", "message": "lists a table twice"})
    return errors


@dataclass(frozen=True)
class RetentionSpec:
    """What one scope says; None means "inherit"."""

    destination_resource_id: str | None = None
    tables: tuple[str, ...] | None = None
    enabled: bool | None = None
    mode: str | None = None
    remove_unmanaged: bool | None = None


@dataclass(frozen=True)
class Resolved:
    value: Any
    source: str


@dataclass(frozen=True)
class EffectiveRetention:
    destination_resource_id: Resolved
    tables: Resolved
    enabled: Resolved
    mode: Resolved
    remove_unmanaged: Resolved

    @property
    def managed(self) -> bool:
        """Whether any scope asks for export at all (no destination: nothing to manage)."""
        return self.destination_resource_id.value is not None

    @property
    def enforced(self) -> bool:
        return bool(self.mode.value == "enforce")

    def as_dict(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name in FIELDS:
            value = getattr(self, name).value
            out[name] = {
                "value": list(value) if isinstance(value, tuple) else value,
                "source": getattr(self, name).source,
            }
        return out


_DEFAULTS: dict[str, Any] = {
    "destination_resource_id": None,
    "tables": DEFAULT_TABLES,
    "enabled": True,
    "mode": "enforce",
    "remove_unmanaged": False,
}


def resolve(tenant: RetentionSpec | None, workspace: RetentionSpec | None) -> EffectiveRetention:
    """The effective retention policy of one workspace, field by field, with provenance."""
    picked = {}
    for name in FIELDS:
        picked[name] = Resolved(_DEFAULTS[name], "default")
        for scope, spec in (("workspace", workspace), ("tenant", tenant)):
            value = getattr(spec, name) if spec is not None else None
            if value is not None:
                picked[name] = Resolved(value, scope)
                break
    return EffectiveRetention(**picked)


@dataclass(frozen=True)
class ObservedRule:
    """A data export rule as discovery (or the last apply) saw it."""

    name: str
    destination_resource_id: str
    tables: tuple[str, ...]
    enabled: bool


@dataclass(frozen=True)
class DesiredRule:
    name: str
    destination_resource_id: str
    tables: tuple[str, ...]
    enabled: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "destination_resource_id": self.destination_resource_id,
            "tables": list(self.tables),
            "enabled": self.enabled,
        }


def desired_rule(policy: EffectiveRetention) -> DesiredRule | None:
    if not policy.managed:
        return None
    return DesiredRule(
        MANAGED_RULE,
        str(policy.destination_resource_id.value),
        tuple(policy.tables.value),
        bool(policy.enabled.value),
    )


def rule_matches(desired: DesiredRule, observed: ObservedRule | None) -> bool:
    if observed is None:
        return False
    return (
        observed.destination_resource_id.lower() == desired.destination_resource_id.lower()
        and sorted(t.lower() for t in observed.tables) == sorted(t.lower() for t in desired.tables)
        and observed.enabled == desired.enabled
    )


@dataclass(frozen=True)
class RetentionPlan:
    """What an apply would do on one Log Analytics workspace."""

    put: DesiredRule | None  # create or replace the managed rule
    delete: tuple[str, ...]  # unmanaged rules to delete (only with remove_unmanaged)
    problem: str | None  # a rule of Azure's the change would break: refuse before calling

    @property
    def empty(self) -> bool:
        return self.put is None and not self.delete


def plan(policy: EffectiveRetention, observed: list[ObservedRule]) -> RetentionPlan:
    """The writes that make `observed` meet `policy`, checked against Azure's rules first."""
    desired = desired_rule(policy)
    if desired is None:
        return RetentionPlan(None, (), None)
    ours = next((r for r in observed if r.name.lower() == desired.name.lower()), None)
    others = [r for r in observed if r.name.lower() != desired.name.lower()]
    delete = tuple(r.name for r in others) if policy.remove_unmanaged.value else ()
    remaining = [r for r in others if r.name not in delete]
    put = None if rule_matches(desired, ours) else desired
    problem = None
    if put is not None:
        if put.enabled and sum(r.enabled for r in remaining) >= MAX_ENABLED_RULES:
            problem = (
                f"the workspace already has {MAX_ENABLED_RULES} enabled data export rules not "
                "managed by this service (Azure allows at most 10)"
            )
        kind = destination_type(put.destination_resource_id)
        if kind == "StorageAccount" and any(
            r.destination_resource_id.lower() == put.destination_resource_id.lower()
            for r in remaining
        ):
            clash = next(
                r.name
                for r in remaining
                if r.destination_resource_id.lower() == put.destination_resource_id.lower()
            )
            problem = (
                f"rule '{clash}' (not managed by this service) already exports to this storage "
                "account, and Azure allows one rule per storage account"
            )
    return RetentionPlan(put, delete, problem)


def unsupported_tables(policy: EffectiveRetention) -> dict[str, str]:
    """The policy's tables Azure would accept but not export, with the reasons."""
    if not policy.managed:
        return {}
    kind = destination_type(str(policy.destination_resource_id.value)) or "StorageAccount"
    out = {}
    for table in policy.tables.value:
        reason = unsupported_table_reason(table, kind)
        if reason is not None:
            out[table] = reason
    return out
