"""Liveness and readiness, and the schema check the API makes when it starts.

Both read the schema's revision without alembic: importing alembic (with mako and pygments)
and loading its script directory cost every API worker about a tenth of a second of start-up,
for two strings. ``head_revision`` reads the ``revision`` / ``down_revision`` assignments of
the migration scripts (falling back to alembic when they are not plain literals or do not form
one head); ``tests/api/test_health.py`` checks it agrees with alembic.
"""

from __future__ import annotations

import ast
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from service.config import PROJECT_ROOT
from service.services.runtime import Runtime

log = logging.getLogger(__name__)
VERSIONS = PROJECT_ROOT / "migrations" / "versions"


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
    try:
        revision = current_revision(runtime.database.engine)
    except SQLAlchemyError as exc:
        log.warning("readiness: database unreachable (%s)", type(exc).__name__)
        return Readiness(False, "unreachable", "unknown", None, expected, coordination)
    at_head = revision == expected
    return Readiness(
        at_head, "ok", "at_head" if at_head else "behind", revision, expected, coordination
    )


def schema_behind(engine: Engine) -> str | None:
    """None when the database's schema is at the migrations' head, else what is wrong (the
    API's start-up refusal). Raises SQLAlchemyError when it cannot tell."""
    revision, expected = current_revision(engine), head_revision()
    if revision == expected:
        return None
    return f"database schema is at {revision or 'nothing'}, code expects {expected}"


def current_revision(engine: Engine) -> str | None:
    """The revision recorded in ``alembic_version`` (None: never migrated), as alembic reads it.

    Raises SQLAlchemyError when the database does not answer.
    """
    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, "alembic_version"):
            return None
        rows = [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]
    # Several rows (branches) never equal one head: report them, as "behind".
    return ",".join(sorted(rows)) if rows else None


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The revision the code expects (read once: the scripts do not change at runtime)."""
    revisions: dict[str, Any] = {}
    for path in sorted(VERSIONS.glob("*.py")):
        found = _assignments(path.read_text(encoding="utf-8"))
        if found is None:
            return _alembic_head()
        revisions[found[0]] = found[1]
    parents: set[str] = set()
    for down in revisions.values():
        parents.update([down] if isinstance(down, str) else list(down or ()))
    heads = [rev for rev in revisions if rev not in parents]
    return heads[0] if len(heads) == 1 else _alembic_head()


def _assignments(source: str) -> tuple[str, Any] | None:
    """(revision, down_revision) of a migration script, if both are literals."""
    values: dict[str, Any] = {}
    for node in ast.parse(source).body:
        target = value = None
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            target, value = node.target.id, node.value
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            target, value = node.targets[0].id, node.value
        if target in ("revision", "down_revision") and value is not None:
            try:
                values[target] = ast.literal_eval(value)
            except ValueError:
                return None
    if not isinstance(values.get("revision"), str) or "down_revision" not in values:
        return None
    return values["revision"], values["down_revision"]


def _alembic_head() -> str:
    from service.db.migrate import head_revision as alembic_head

    return alembic_head()
