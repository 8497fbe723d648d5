"""Online deployment documents (ARM JSON, 2023-04-01-preview) as the v2 adapter
(``service.adapters.azure_ai_ml``) reads and writes them: the model data collection switch, the
fingerprint a decision is made on, and the snapshot the use cases see. Pure functions."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from service.domain.targets import deployment_target, online_kind, split_target
from service.errors import NotFound
from service.ports import MlTarget, ServiceSnapshot

MODEL_COLLECTIONS = ("model_inputs", "model_outputs")
BUSY = frozenset({"Creating", "Updating", "Deleting", "Scaling"})


def data_collection_enabled(collector: Any) -> bool:
    if not isinstance(collector, dict):
        return False
    collections = collector.get("collections") or {}
    return all(
        isinstance(collections.get(name), dict)
        and collections[name].get("dataCollectionMode") == "Enabled"
        for name in MODEL_COLLECTIONS
    )


def with_data_collection(collector: Any, enabled: bool) -> dict[str, Any] | None:
    """The data collector with model inputs/outputs switched, everything else kept."""
    if not isinstance(collector, dict):
        if not enabled:
            return None
        collector = {"collections": {}}
    updated = json.loads(json.dumps(collector))
    collections = updated.setdefault("collections", {})
    for name in MODEL_COLLECTIONS:
        current = collections.get(name) if isinstance(collections.get(name), dict) else {}
        collections[name] = {**current, "dataCollectionMode": "Enabled" if enabled else "Disabled"}
    return dict(updated)


def fingerprint(document: dict[str, Any]) -> str:
    """What a decision was made on: every writable part of the deployment."""
    props = {
        k: v for k, v in (document.get("properties") or {}).items() if k != "provisioningState"
    }
    material = {k: document.get(k) for k in ("tags", "sku", "identity", "kind")}
    material["properties"] = props
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]


def deployment_key(target: MlTarget, name: str) -> tuple[str, ...]:
    return (
        target.subscription_id.lower(),
        target.resource_group.lower(),
        target.workspace_name.lower(),
        name.lower(),
    )


def split(name: str) -> tuple[str, str]:
    parts = split_target(name)
    if parts is None:
        raise NotFound(f"'{name}' is not an online deployment (expected endpoint.deployment)")
    return parts


def snapshot(endpoint: str, doc: dict[str, Any], scoring_uri: str | None) -> ServiceSnapshot:
    props = doc.get("properties") or {}
    compute = str(props.get("endpointComputeType") or "Managed")
    modified = (doc.get("systemData") or {}).get("lastModifiedAt")
    state = props.get("provisioningState")
    return ServiceSnapshot(
        name=deployment_target(endpoint, str(doc.get("name"))),
        compute_type=compute,
        state=state,
        app_insights_enabled=bool(props.get("appInsightsEnabled", False)),
        data_collection_enabled=data_collection_enabled(props.get("dataCollector")),
        scoring_uri=scoring_uri,
        updated_at=parse_time(modified),
        kind=online_kind(compute).value,
        online_endpoint=endpoint,
        deployment=str(doc.get("name")),
        busy=state in BUSY,
        version=fingerprint(doc),
    )


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
