"""Unauthenticated operational routes."""

from __future__ import annotations

from flask import Blueprint, Response

from service.api.hooks import contract, runtime
from service.api.responses import json_response
from service.services.health import check_readiness

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    readiness = check_readiness(runtime())
    return json_response(readiness, 200 if readiness.ready else 503)


@bp.get("/openapi.yaml")
def openapi_document() -> Response:
    return Response(contract().text, mimetype="application/yaml")
