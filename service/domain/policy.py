"""Monitoring policy: scopes, effective-policy resolution, drift and compliance. Pure rules.

A policy may be set at three scopes; for each field the most specific scope that sets it wins
(endpoint > workspace > tenant), and a field nobody sets falls back to the default (``None`` for
the monitoring switches, meaning "not managed": the service leaves that setting alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

FIELDS = ("app_insights", "model_data_collection", "mode")
SCOPES = ("endpoint", "workspace", "tenant")  # most specific first
MODES = ("enforce", "audit")
DEFAULT_MODE = "enforce"
# Model data collection (`collect_model_data`) exists on AKS web services only.
DATA_COLLECTION_COMPUTE = frozenset({"AKS"})


class Compliance(StrEnum):
    COMPLIANT = "compliant"
    DRIFTED = "drifted"
    PENDING = "pending"
    FAILED = "failed"
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PolicySpec:
    """What one scope says; ``None`` means "inherit"."""

    app_insights: bool | None = None
    model_data_collection: bool | None = None
    mode: str | None = None


@dataclass(frozen=True)
class Resolved:
    """One field of the effective policy and the scope it came from (or ``default``)."""

    value: Any
    source: str


@dataclass(frozen=True)
class EffectivePolicy:
    app_insights: Resolved
    model_data_collection: Resolved
    mode: Resolved

    @property
    def enforced(self) -> bool:
        return bool(self.mode.value == "enforce")

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {
            f: {"value": getattr(self, f).value, "source": getattr(self, f).source} for f in FIELDS
        }


@dataclass(frozen=True)
class Observed:
    """The monitoring-relevant part of what discovery saw."""

    compute_type: str
    app_insights_enabled: bool | None
    data_collection_enabled: bool | None


def resolve(
    tenant: PolicySpec | None, workspace: PolicySpec | None, endpoint: PolicySpec | None
) -> EffectivePolicy:
    """The effective policy of one endpoint, field by field, with provenance."""
    layers = (("endpoint", endpoint), ("workspace", workspace), ("tenant", tenant))
    defaults: dict[str, Any] = {"app_insights": None, "model_data_collection": None}
    defaults["mode"] = DEFAULT_MODE
    picked: dict[str, Resolved] = {}
    for name in FIELDS:
        picked[name] = Resolved(defaults[name], "default")
        for scope, spec in layers:
            value = getattr(spec, name) if spec is not None else None
            if value is not None:
                picked[name] = Resolved(value, scope)
                break
    return EffectivePolicy(**picked)


def supports_data_collection(compute_type: str) -> bool:
    return compute_type.upper() in DATA_COLLECTION_COMPUTE


def unsupported_reason(policy: EffectivePolicy, compute_type: str) -> str | None:
    """Why the endpoint cannot meet its policy, or None.

    Only an endpoint-scoped demand counts: a tenant or workspace default for data collection
    simply does not apply to compute types without it.
    """
    mdc = policy.model_data_collection
    if (
        mdc.source == "endpoint"
        and mdc.value is True
        and not supports_data_collection(compute_type)
    ):
        return f"model data collection is not available on {compute_type} web services"
    return None


def changes_needed(policy: EffectivePolicy, observed: Observed) -> dict[str, bool]:
    """The settings to change so that ``observed`` meets ``policy`` (empty = no drift)."""
    changes: dict[str, bool] = {}
    wanted = policy.app_insights.value
    if wanted is not None and observed.app_insights_enabled is not wanted:
        changes["app_insights"] = bool(wanted)
    wanted = policy.model_data_collection.value
    if (
        wanted is not None
        and supports_data_collection(observed.compute_type)
        and observed.data_collection_enabled is not wanted
    ):
        changes["model_data_collection"] = bool(wanted)
    return changes


@dataclass(frozen=True)
class ComplianceFacts:
    """Everything the compliance decision looks at for one endpoint."""

    policy: EffectivePolicy
    observed: Observed | None  # None: never observed (a policy set before discovery)
    access_broken: bool = False  # the tenant's credential failed the last discovery
    operation_active: bool = False  # an operation is queued or running
    last_operation_failed: bool = False  # the latest finished operation failed


def compliance(facts: ComplianceFacts) -> tuple[Compliance, str | None]:
    """The endpoint's compliance state and a short reason."""
    if facts.observed is None:
        return Compliance.UNKNOWN, "the endpoint has not been observed yet"
    if facts.access_broken:
        return Compliance.UNKNOWN, "the tenant's Azure credential failed at the last discovery"
    reason = unsupported_reason(facts.policy, facts.observed.compute_type)
    if reason is not None:
        return Compliance.UNSUPPORTED, reason
    drift = changes_needed(facts.policy, facts.observed)
    if facts.operation_active:
        return Compliance.PENDING, "an operation is applying the policy"
    if not drift:
        return Compliance.COMPLIANT, None
    if facts.last_operation_failed:
        return Compliance.FAILED, "the last operation failed"
    return Compliance.DRIFTED, "differs from the policy: " + ", ".join(sorted(drift))
