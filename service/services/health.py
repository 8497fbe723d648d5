"""Liveness and readiness."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service.db.migrate import current_revision, head_revision
from service.services.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    database: str  # "ok" | "unreachable"
    schema: str  # "at_head" | "behind" | "unknown"
    schema_revision: str | None
    expected_revision: str


def check_readiness(runtime: Runtime) -> Readiness:
    """Ready when the database answers and its schema is at the migrations' head."""
    expected = head_revision()
    engine = runtime.database.engine
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision = current_revision(engine)
    except SQLAlchemyError as exc:
        log.warning("readiness: database unreachable (%s)", type(exc).__name__)
        return Readiness(False, "unreachable", "unknown", None, expected)
    at_head = revision == expected
    return Readiness(at_head, "ok", "at_head" if at_head else "behind", revision, expected)
