"""Endpoint routes (read-only: discovery writes them)."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response

from service.api.hooks import runtime, valid
from service.api.responses import call_context, json_response, page_request
from service.domain.jsonable import isoformat
from service.services import endpoints
from service.services.endpoints import EndpointView

bp = Blueprint("endpoints", __name__)

ENDPOINTS = "/v1/tenants/<tenant>/workspaces/<workspace>/endpoints"


@bp.get(ENDPOINTS)
def list_endpoints(tenant: str, workspace: str) -> Response:
    include_vanished = bool(valid().query.get("include_vanished", False))
    page = endpoints.list_endpoints(
        runtime(),
        call_context(),
        tenant,
        workspace,
        page_request(),
        include_vanished=include_vanished,
    )
    memo: dict[Any, Any] = {}
    items = [endpoint_json(ep, memo) for ep in page.items]
    body = {"items": items, "next_cursor": page.next_cursor}
    # orjson: json.dumps spent ~1 ms of CPU on a page of 200 (bench/fleet_queries.py), a
    # seventh of the page; orjson writes the same JSON (compact, UTF-8) in a tenth of that.
    return Response(orjson.dumps(body), mimetype="application/json")


@bp.get(ENDPOINTS + "/<endpoint>")
def get_endpoint(tenant: str, workspace: str, endpoint: str) -> Response:
    ep = endpoints.get_endpoint(runtime(), call_context(), tenant, workspace, endpoint)
    return json_response(ep, etag=ep.etag)


def endpoint_json(ep: EndpointView, memo: dict[Any, Any] | None = None) -> dict[str, Any]:
    """What ``jsonable(ep)`` gives, written out: a page of 200 endpoints spent a third of its
    time in the generic walk (``tests/api/test_endpoints.py`` checks they stay equal).

    ``memo`` (one per response) shares what endpoints of a page have in common: discovery
    stamps a workspace's endpoints with one time, and they share a few effective policies.
    """
    memo = {} if memo is None else memo

    def _time(value: Any) -> str | None:
        if value is None:
            return None
        text = memo.get(value)
        if text is None:
            text = memo[value] = isoformat(value)
        return text

    m = ep.monitoring
    return {
        "id": ep.id,
        "tenant": ep.tenant,
        "workspace": ep.workspace,
        "name": ep.name,
        "kind": ep.kind,
        "online_endpoint": ep.online_endpoint,
        "deployment": ep.deployment,
        "rolls_instances": ep.rolls_instances,
        "compute_type": ep.compute_type,
        "state": ep.state,
        "app_insights_enabled": ep.app_insights_enabled,
        "data_collection_enabled": ep.data_collection_enabled,
        "scoring_uri": ep.scoring_uri,
        "azure_updated_at": _time(ep.azure_updated_at),
        "observed_at": _time(ep.observed_at),
        "vanished_at": _time(ep.vanished_at),
        "etag": ep.etag,
        "monitoring": None
        if m is None
        else {
            "desired": _desired_json(m.desired, memo),
            "compliance": m.compliance.value,
            "reason": m.reason,
            "active_operation": m.active_operation,
        },
    }


def _desired_json(desired: dict[str, dict[str, Any]], memo: dict[Any, Any]) -> dict[str, Any]:
    """The effective policy's JSON form (the same object for endpoints that share it)."""
    key = ("desired", id(desired))
    found = memo.get(key)
    if found is None or found[0] is not desired:
        found = memo[key] = (
            desired,
            {
                field: {"value": _plain(spec["value"]), "source": spec["source"]}
                for field, spec in desired.items()
            },
        )
    return found[1]


def _plain(value: Any) -> Any:
    # Policy values are booleans, ints, None or a str enum (the mode): its value, as jsonable.
    return value.value if hasattr(value, "value") else value
