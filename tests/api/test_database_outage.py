"""A database outage is a 503 that tells callers when to come back (issue 10, item 10)."""

from __future__ import annotations

import socket

from service.app import create_app
from service.config import Settings
from service.db.session import Database
from tests.support.api import ApiClient


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_requests_during_a_database_outage_get_503_with_retry_after(settings: Settings) -> None:
    gone = Database(f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/test")
    app = create_app(settings.with_overrides(database_url=gone.url), database=gone)
    try:
        with app.test_client() as client:
            api = ApiClient(client)
            for method, path in (("GET", "/v1/tenants"), ("GET", "/v1/audit-events")):
                r = api.call(method, path, "amlcp_" + "x" * 40, validate=False)
                assert r.status_code == 503, r.get_data(as_text=True)
                assert r.content_type == "application/problem+json"
                assert int(r.headers["Retry-After"]) >= 1
                assert "retry later" in r.get_json()["detail"]
    finally:
        gone.dispose()
