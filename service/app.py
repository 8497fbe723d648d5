"""Composition root of the HTTP API: ``create_app(settings=None) -> Flask``."""

from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from service.api import admin, endpoints, health, tenants
from service.api.hooks import register_hooks
from service.api.openapi import OpenApiContract
from service.api.problems import register_error_handlers
from service.config import Settings
from service.db.migrate import current_revision, head_revision
from service.db.session import Database
from service.logs import configure_logging
from service.services.runtime import Runtime

log = logging.getLogger(__name__)


class SchemaNotAtHead(RuntimeError):
    """The database schema is older or newer than this code: run the migrations first."""


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> Flask:
    """Build the API. Refuses to start on a reachable database whose schema is not at head."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level_number)
    database = database or Database(settings.database_url)
    if settings.require_schema_at_head:
        _verify_schema(database)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["amlcp.runtime"] = Runtime(settings=settings, database=database)
    app.extensions["amlcp.contract"] = OpenApiContract(settings.openapi_path)
    register_hooks(app)
    register_error_handlers(app)
    for blueprint in (health.bp, tenants.bp, endpoints.bp, admin.bp):
        app.register_blueprint(blueprint)
    return app


def _verify_schema(database: Database) -> None:
    try:
        revision = current_revision(database.engine)
    except SQLAlchemyError as exc:
        # Start anyway: /readyz reports 503 until the database answers.
        log.warning("database unreachable at start-up (%s)", type(exc).__name__)
        return
    if revision != head_revision():
        raise SchemaNotAtHead(
            f"database schema is at {revision or 'nothing'}, code expects {head_revision()}: "
            "run 'python -m service.cli db-upgrade' first"
        )
