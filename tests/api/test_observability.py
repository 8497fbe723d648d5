"""Operator signals: request ids on responses and log lines, /metrics, /docs, CORS."""

from __future__ import annotations

import io
import json
import logging
import re

from flask import Flask

from service.app import create_app
from service.config import Settings
from service.db.session import Database
from service.logs import JsonFormatter, RedactingFilter
from tests.support.api import ApiClient


def test_a_supplied_request_id_is_echoed_and_a_missing_one_is_made(
    api: ApiClient, admin_key: str
) -> None:
    supplied = api.get("/v1/tenants", admin_key, headers={"X-Request-ID": "portal-42.a_b"})
    assert supplied.headers["X-Request-ID"] == "portal-42.a_b"
    made = api.get("/v1/tenants", admin_key, headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["X-Request-ID"] != "bad id with spaces"
    assert len(made.headers["X-Request-ID"]) == 32
    unauthenticated = api.get("/v1/tenants", headers={"X-Request-ID": "no-key-1"})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["X-Request-ID"] == "no-key-1"
    assert unauthenticated.get_json()["request_id"] == "no-key-1"


def test_log_lines_are_json_with_the_request_id_and_no_secrets(
    settings: Settings, database: Database, admin_key: str
) -> None:
    app = create_app(settings, database=database)

    @app.get("/v1/explode")
    def explode() -> None:
        raise RuntimeError(f"boom with Authorization: Bearer {admin_key}")

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    logging.getLogger().addHandler(handler)
    try:
        # What an SDK call abandoned by another test may log meanwhile, from its own thread.
        logging.getLogger("azureml.core.webservice.webservice").error("unrelated failure")
        with app.test_client() as client:
            r = client.get(
                "/v1/explode",
                headers={"Authorization": f"Bearer {admin_key}", "X-Request-ID": "trace-me"},
            )
    finally:
        logging.getLogger().removeHandler(handler)
    assert r.status_code == 500
    assert "boom" not in r.get_data(as_text=True)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    # The app's own error line. Only its lines are counted: a call another test abandoned (an
    # SDK call left to end in its thread) may log its own error meanwhile (it did once, in a
    # full run: azureml-core's "Received bad response").
    (error,) = [
        line
        for line in lines
        if line["level"] == "ERROR" and line["logger"] == "service.api.problems"
    ]
    assert error["request_id"] == "trace-me"
    assert "RuntimeError" in error["exc"]
    assert admin_key not in stream.getvalue()


def test_metrics_count_requests_by_route_and_report_operations(api: ApiClient) -> None:
    api.get("/healthz")
    r = api.get("/metrics")
    assert r.status_code == 200
    assert r.mimetype == "text/plain"
    text = r.get_data(as_text=True)
    assert 'amlcp_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'amlcp_operations{state="queued"}' in text
    assert "amlcp_http_request_duration_seconds_bucket" in text


def test_the_swagger_ui_is_served_locally_without_a_cdn(app: Flask) -> None:
    with app.test_client() as client:
        page = client.get("/docs/")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "/openapi.yaml" in html
        # Every script and stylesheet comes from this service: the machines are offline.
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets
        assert all(a.startswith("/docs/") for a in assets), assets
        with client.get("/docs/swagger-ui-bundle.js") as bundle:
            assert bundle.status_code == 200
            assert len(bundle.get_data()) > 100_000


def test_cors_answers_only_allow_listed_origins(
    settings: Settings, database: Database, admin_key: str
) -> None:
    app = create_app(
        settings.with_overrides(cors_allowed_origins=frozenset({"https://portal.example"})),
        database=database,
    )
    with app.test_client() as client:
        allowed = client.get(
            "/v1/tenants",
            headers={"Origin": "https://portal.example", "Authorization": f"Bearer {admin_key}"},
        )
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://portal.example"
        assert "ETag" in allowed.headers["Access-Control-Expose-Headers"]
        preflight = client.options(
            "/v1/tenants",
            headers={
                "Origin": "https://portal.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Authorization, Content-Type",
            },
        )
        assert preflight.status_code == 200
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
        other = client.get(
            "/v1/tenants",
            headers={"Origin": "https://evil.example", "Authorization": f"Bearer {admin_key}"},
        )
        assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_is_off_by_default(app: Flask, admin_key: str) -> None:
    with app.test_client() as client:
        r = client.get(
            "/v1/tenants",
            headers={"Origin": "https://portal.example", "Authorization": f"Bearer {admin_key}"},
        )
    assert "Access-Control-Allow-Origin" not in r.headers
