"""Monitoring policy: scopes, effective-policy resolution, drift and compliance. Pure rules.

A policy may be set at three scopes; for each field the most specific scope that sets it wins
(endpoint > workspace > tenant), and a field nobody sets falls back to the default (``None`` for
the monitoring switches, meaning "not managed": the service leaves that setting alone). For an
online deployment (SDK v2) the endpoint scope is two layers: a policy on the deployment's own
target name (``{endpoint}.{deployment}``, source ``deployment``) overrides one on its online
endpoint's name (source ``endpoint``), which applies to all of the endpoint's deployments.
What each kind of target supports comes from ``service.domain.targets``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from service.domain.capabilities import SETTINGS, has_setting
from service.domain.capabilities import unsupported_reason as _unsupported_setting
from service.domain.states import PolicyMode

FIELDS = ("app_insights", "model_data_collection", "mode", "max_parallel_updates")
MONITORING_FIELDS = SETTINGS
SCOPES = ("deployment", "endpoint", "workspace", "tenant")  # most specific first
DEFAULT_MODE = PolicyMode.ENFORCE
DEFAULT_MAX_PARALLEL_UPDATES = 1


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
    max_parallel_updates: int | None = None


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
    max_parallel_updates: Resolved

    @property
    def enforced(self) -> bool:
        return bool(self.mode.value == "enforce")

    @property
    def parallel_updates(self) -> int:
        return int(self.max_parallel_updates.value or DEFAULT_MAX_PARALLEL_UPDATES)

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
    tenant: PolicySpec | None,
    workspace: PolicySpec | None,
    endpoint: PolicySpec | None,
    deployment: PolicySpec | None = None,
) -> EffectivePolicy:
    """The effective policy of one target, field by field, with provenance."""
    layers = (
        ("deployment", deployment),
        ("endpoint", endpoint),
        ("workspace", workspace),
        ("tenant", tenant),
    )
    defaults: dict[str, Any] = {"app_insights": None, "model_data_collection": None}
    defaults["mode"] = DEFAULT_MODE
    defaults["max_parallel_updates"] = DEFAULT_MAX_PARALLEL_UPDATES
    picked: dict[str, Resolved] = {}
    for name in FIELDS:
        picked[name] = Resolved(defaults[name], "default")
        for scope, spec in layers:
            value = getattr(spec, name) if spec is not None else None
            if value is not None:
                picked[name] = Resolved(value, scope)
                break
    return EffectivePolicy(**picked)


def unsupported_settings(policy: EffectivePolicy, compute_type: str) -> dict[str, str]:
    """The settings the policy asks of an endpoint whose kind lacks them, with the reasons.

    Whatever scope the demand comes from counts: a tenant default of "data collection on" is
    not met by an ACI web service, and compliance says so instead of calling it compliant.
    """
    out = {}
    for name in SETTINGS:
        reason = _unsupported_setting(compute_type, name, getattr(policy, name).value)
        if reason is not None:
            out[name] = reason
    return out


def unsupported_reason(policy: EffectivePolicy, compute_type: str) -> str | None:
    """Why the endpoint cannot meet (part of) its policy, or None."""
    reasons = unsupported_settings(policy, compute_type)
    return "; ".join(reasons[name] for name in sorted(reasons)) or None


def changes_needed(policy: EffectivePolicy, observed: Observed) -> dict[str, bool]:
    """The settings to change so that ``observed`` meets ``policy`` (empty = no drift).

    Settings the endpoint's kind does not have are never changes: they are unsupported (on) or
    met by nature (off).
    """
    changes: dict[str, bool] = {}
    current = {
        "app_insights": observed.app_insights_enabled,
        "model_data_collection": observed.data_collection_enabled,
    }
    for name in SETTINGS:
        wanted = getattr(policy, name).value
        if wanted is None or not has_setting(observed.compute_type, name):
            continue
        if current[name] is not wanted:
            changes[name] = bool(wanted)
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
    """The endpoint's compliance state and a short reason.

    What can still be done comes first (pending, failed, drifted); ``unsupported`` means the
    rest of the policy is met but part of it cannot be on this kind of endpoint.
    """
    if facts.observed is None:
        return Compliance.UNKNOWN, "the endpoint has not been observed yet"
    if facts.access_broken:
        return Compliance.UNKNOWN, "the tenant's Azure credential failed at the last discovery"
    unsupported = unsupported_reason(facts.policy, facts.observed.compute_type)
    drift = changes_needed(facts.policy, facts.observed)
    if facts.operation_active:
        return Compliance.PENDING, "an operation is applying the policy"
    if drift:
        if facts.last_operation_failed:
            return Compliance.FAILED, "the last operation failed"
        reason = "differs from the policy: " + ", ".join(sorted(drift))
        return Compliance.DRIFTED, f"{reason}; {unsupported}" if unsupported else reason
    if unsupported is not None:
        return Compliance.UNSUPPORTED, unsupported
    return Compliance.COMPLIANT, None
