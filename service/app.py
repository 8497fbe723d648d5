"""Composition root of the HTTP API: ``create_app(settings=None) -> Flask``."""

from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from service.api import (
    admin,
    console,
    credentials,
    endpoints,
    health,
    loganalytics,
    logs,
    monitoring,
    retention,
    tenants,
)
from service.api.hooks import register_hooks
from service.api.observability import register_observability
from service.api.openapi import OpenApiContract
from service.api.problems import register_error_handlers
from service.bootstrap import build_runtime, refuse_secrets_without_key, with_credential_keys
from service.config import Settings
from service.db.session import Database
from service.logs import configure_logging
from service.services.health import schema_behind

log = logging.getLogger(__name__)


class SchemaNotAtHead(RuntimeError):
    """The database schema is older or newer than this code: run the migrations first."""


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> Flask:
    """Build the API. Refuses to start on a reachable database whose schema is not at head,
    or without the keys for secrets at rest (see ``with_credential_keys``)."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level_number, json_lines=settings.log_json)
    settings = with_credential_keys(settings)
    runtime = build_runtime(settings, database)
    if settings.require_schema_at_head and _verify_schema(runtime.database):
        refuse_secrets_without_key(runtime)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["amlcp.runtime"] = runtime
    app.extensions["amlcp.contract"] = OpenApiContract(settings.openapi_path)
    register_observability(app)
    register_hooks(app)
    register_error_handlers(app)
    for blueprint in (health.bp, tenants.bp, endpoints.bp, credentials.bp, admin.bp, monitoring.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(logs.bp)
    app.register_blueprint(retention.bp)
    app.register_blueprint(loganalytics.bp)
    app.register_blueprint(console.bp)
    return app


def _verify_schema(database: Database) -> bool:
    """True when the database answered and is at head; raises when it answered otherwise."""
    try:
        behind = schema_behind(database.engine)
    except SQLAlchemyError as exc:
        # Start anyway: /readyz reports 503 until the database answers.
        log.warning("database unreachable at start-up (%s)", type(exc).__name__)
        return False
    if behind is not None:
        raise SchemaNotAtHead(f"{behind}: run 'python -m service.cli db-upgrade' first")
    return True
