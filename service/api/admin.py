"""API keys and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, url_for

from service.api.hooks import runtime, valid
from service.api.responses import (
    call_context,
    json_response,
    no_content,
    page_request,
    page_response,
)
from service.errors import ValidationFailed
from service.services import api_keys, audit

bp = Blueprint("admin", __name__)


@bp.get("/v1/api-keys")
def list_api_keys() -> Response:
    tenant = valid().query.get("tenant")
    return page_response(
        api_keys.list_api_keys(runtime(), call_context(), page_request(), tenant=tenant)
    )


@bp.post("/v1/api-keys")
def create_api_key() -> Response:
    data = dict(valid().body)
    if data.get("expires_at") is not None:
        data["expires_at"] = _timestamp(data["expires_at"], "body.expires_at")
    created = api_keys.create_api_key(runtime(), call_context(), data)
    location = url_for("admin.get_api_key", key_id=created.api_key.id)
    return json_response(created, 201, location=location)


def _timestamp(raw: str, field: str) -> datetime:
    """An RFC 3339 timestamp (the contract checked its shape) as an aware UTC datetime.

    RFC 3339 allows a lower-case 't'/'z' and leap seconds, which fromisoformat rejects, and a
    value near year 1 or 9999 can overflow when converted to UTC: all are 400s, never 500s.
    """
    try:
        return datetime.fromisoformat(raw.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValidationFailed(
            f"{field}: must be a valid date-time",
            [{"field": field, "message": "must be a valid date-time in years 1 to 9999"}],
        ) from None


@bp.get("/v1/whoami")
def whoami() -> Response:
    return json_response(api_keys.whoami(runtime(), call_context()))


@bp.get("/v1/api-keys/<key_id>")
def get_api_key(key_id: str) -> Response:
    return json_response(api_keys.get_api_key(runtime(), call_context(), key_id))


@bp.delete("/v1/api-keys/<key_id>")
def revoke_api_key(key_id: str) -> Response:
    api_keys.revoke_api_key(runtime(), call_context(), key_id)
    return no_content()


@bp.get("/v1/audit-events")
def list_audit_events() -> Response:
    q = valid().query
    page = audit.list_events(
        runtime(),
        call_context(),
        page_request(),
        tenant=q.get("tenant"),
        action=q.get("action"),
        target_id=q.get("target_id"),
    )
    return page_response(page)
