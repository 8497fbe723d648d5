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
    coordination: str  # "memory" | "host" | "redis" | "degraded" (Redis down: still ready)


def check_readiness(runtime: Runtime) -> Readiness:
    """Ready when the database answers and its schema is at the migrations' head.

    A shared coordination store (Redis) that does not answer makes the answer say
    ``degraded`` but not unready: the service still works on local shares of the budgets, and
    taking every replica out of the load balancer would turn a Redis outage into a full one.
    """
    expected = head_revision()
    coordination = runtime.logs.shaper.check()
    engine = runtime.database.engine
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision = current_revision(engine)
    except SQLAlchemyError as exc:
        log.warning("readiness: database unreachable (%s)", type(exc).__name__)
        return Readiness(False, "unreachable", "unknown", None, expected, coordination)
    at_head = revision == expected
    return Readiness(
        at_head, "ok", "at_head" if at_head else "behind", revision, expected, coordination
    )
