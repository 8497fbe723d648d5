"""Helpers shared by the API tests: the route list, problem checks, state fingerprints."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from werkzeug.test import TestResponse

from service.db.models import (
    ApiKey,
    AuditEvent,
    DeviceLogin,
    Endpoint,
    Operation,
    Policy,
    Tenant,
    TenantCredential,
    Workspace,
)
from service.db.session import Database
from service.services import audit_queue
from tests.support.contract import CONTRACT, METHODS


def contract_operations(prefix: str = "/v1/") -> set[tuple[str, str]]:
    """Every (method, path template) the contract declares under ``prefix``."""
    return {
        (method, template)
        for template, item in CONTRACT["paths"].items()
        if template.startswith(prefix)
        for method in METHODS
        if method in item
    }


def assert_problem(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem with this status, naming the request id and no internals."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status
    for field in ("type", "title", "detail", "code"):
        assert isinstance(body[field], str)
        assert body[field]
    if code is not None:
        assert body["code"] == code
    assert body["request_id"] == response.headers["X-Request-ID"]
    text = response.get_data(as_text=True)
    for internal in ("Traceback", 'File "', "sqlalchemy", "SELECT ", "INSERT ", "psycopg"):
        assert internal not in text
    return body


@dataclass(frozen=True)
class Fingerprint:
    """A cheap summary of every table: any insert, update (versions bump) or delete changes it."""

    values: tuple[Any, ...]

    @classmethod
    def of(cls, database: Database) -> Fingerprint:
        # Audit events of earlier calls may still sit in a runtime's queue: written first, so
        # that a background flush cannot look like a change made by the call under test.
        audit_queue.flush_all()
        parts: list[Any] = []
        for model in (Tenant, Workspace, Endpoint, Policy, Operation, TenantCredential):
            parts.append(select(func.count()).select_from(model).scalar_subquery())
            parts.append(select(func.sum(model.version)).scalar_subquery())
        parts.append(select(func.count()).select_from(ApiKey).scalar_subquery())
        parts.append(select(func.count(ApiKey.revoked_at)).scalar_subquery())
        parts.append(select(func.sum(TenantCredential.token_cache_version)).scalar_subquery())
        parts.append(select(func.count()).select_from(DeviceLogin).scalar_subquery())
        parts.append(select(func.count(DeviceLogin.finished_at)).scalar_subquery())
        parts.append(select(func.count()).select_from(AuditEvent).scalar_subquery())
        parts.append(select(func.max(AuditEvent.id)).scalar_subquery())
        with database.engine.connect() as conn:
            return cls(tuple(conn.execute(select(*parts)).one()))


def audit_events(database: Database, **where: Any) -> list[AuditEvent]:
    """Audit rows read straight from the database (oldest first)."""
    with database.session_factory() as session:
        stmt = select(AuditEvent).filter_by(**where).order_by(AuditEvent.id)
        return list(session.scalars(stmt))


def audit_count(database: Database) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one())


def tenant_id(database: Database, slug: str) -> str:
    with database.engine.connect() as conn:
        return str(conn.execute(select(Tenant.id).where(Tenant.slug == slug)).scalar_one())


def key_id_of(database: Database, secret: str) -> str:
    """The id of the key with this secret (found through its stored prefix and hash)."""
    from service.services.api_keys import hash_key

    with database.engine.connect() as conn:
        return str(
            conn.execute(
                select(ApiKey.id).where(ApiKey.key_hash == hash_key(secret, b""))
            ).scalar_one()
        )


def body_text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def mentions(response: TestResponse, needles: list[str]) -> list[str]:
    """Which of ``needles`` occur in the response body or headers (case-insensitive)."""
    haystack = (body_text(response) + json.dumps(dict(response.headers))).lower()
    return [n for n in needles if n.lower() in haystack]


def without_request_id(text: str) -> str:
    return re.sub(r'"request_id": "[^"]*"', '"request_id": "?"', text)
