"""The workspace behind a log query, remembered by the process (``LOG_TARGET_CACHE_TTL_S``):
a repeated query does not look it up again, and every change of a workspace is followed at
the next query (typed API and the Log Analytics-compatible endpoint, through the real
LogsQueryClient inside the service, against the emulator)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from werkzeug.test import TestResponse

from emulator.testing import Sandbox
from service.db.session import Database
from service.services.runtime import Runtime
from tests.integration.log_support import Wired
from tests.support.api import ApiClient, World

QUERY = {"query": "AppRequests | summarize n = count()"}


def compat_path(w: Wired) -> str:
    return f"/loganalytics/v1/workspaces/{w.box.log_analytics_workspace_id}/query"


def ask(api: ApiClient, path: str, key: str) -> TestResponse:
    """One query; the compat endpoint answers in Azure's shape, outside our contract."""
    return api.post(path, key, json=QUERY, validate=not path.startswith("/loganalytics/"))


@contextmanager
def workspace_lookups(database: Database) -> Iterator[list[str]]:
    """The statements that read the workspaces table while the block runs."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if "FROM workspaces" in statement:
            seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", record)


def test_a_repeated_log_query_does_not_look_its_workspace_up_again(
    api: ApiClient, wired: Wired, database: Database, runtime: Runtime
) -> None:
    assert runtime.settings.log_target_cache_ttl_s > 0
    for path in (f"{wired.base}/logs/query", compat_path(wired)):
        runtime.access_cache.forget_all()
        with workspace_lookups(database) as first:
            assert ask(api, path, wired.reader).status_code == 200
        with workspace_lookups(database) as second:
            r = ask(api, path, wired.reader)
        assert r.status_code == 200, r.get_data(as_text=True)
        assert len(first) == 1, first
        assert second == [], path


def test_a_remembered_workspace_is_not_reached_by_another_tenants_key(
    api: ApiClient, world: World, admin_key: str, wired: Wired, sandbox: Sandbox
) -> None:
    other = world.key("admin", world.tenant())
    for path in (f"{wired.base}/logs/query", compat_path(wired)):
        assert ask(api, path, wired.reader).status_code == 200  # remembered
        r = ask(api, path, other)
        assert r.status_code == 404, r.get_data(as_text=True)


def test_a_deleted_workspace_is_not_queried_at_the_next_request(
    api: ApiClient, wired: Wired, admin_key: str
) -> None:
    typed, compat = f"{wired.base}/logs/query", compat_path(wired)
    for path in (typed, compat):
        assert ask(api, path, wired.reader).status_code == 200
    etag = api.get(wired.base, admin_key).headers["ETag"]
    r = api.call("DELETE", wired.base, admin_key, headers={"If-Match": etag})
    assert r.status_code == 204, r.get_data(as_text=True)
    for path in (typed, compat):
        r = ask(api, path, wired.reader)
        assert r.status_code == 404, (path, r.get_data(as_text=True))


def test_a_log_analytics_id_moved_away_is_not_queried_at_the_next_request(
    api: ApiClient, wired: Wired, admin_key: str
) -> None:
    compat = compat_path(wired)
    assert ask(api, compat, wired.reader).status_code == 200

    def patch(la_id: str) -> None:
        etag = api.get(wired.base, admin_key).headers["ETag"]
        r = api.call(
            "PATCH",
            wired.base,
            admin_key,
            json={"log_analytics_workspace_id": la_id},
            headers={"If-Match": etag},
        )
        assert r.status_code == 200, r.get_data(as_text=True)

    patch("00000000-0000-4000-8000-000000000001")
    r = ask(api, compat, wired.reader)
    assert r.status_code == 404, r.get_data(as_text=True)
    assert "could not be found" in r.get_json()["error"]["message"]
    assert wired.box.log_analytics_workspace_id
    patch(wired.box.log_analytics_workspace_id)
    assert ask(api, compat, wired.reader).status_code == 200
