"""Lists are paged with opaque cursors: every item exactly once, in creation order."""

from __future__ import annotations

from typing import Any

from service.db.session import Database
from tests.api.helpers import key_id_of, tenant_id
from tests.support.api import ApiClient, World


def _walk(api: ApiClient, path: str, key: str, limit: int, **query: str) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": str(limit), **query, **({"cursor": cursor} if cursor else {})}
        page = api.get(path, key, query_string=params).get_json()
        assert len(page["items"]) <= limit
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


def test_workspaces_page_through_in_creation_order(api: ApiClient, world: World) -> None:
    tenant = world.tenant()
    created = [world.workspace(tenant) for _ in range(5)]
    key = world.key("reader", tenant)
    pages = _walk(api, f"/v1/tenants/{tenant}/workspaces", key, 2)
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert [w["slug"] for p in pages for w in p["items"]] == created


def test_an_exact_multiple_of_the_page_size_ends_without_an_empty_page(
    api: ApiClient, world: World
) -> None:
    tenant = world.tenant()
    created = [world.workspace(tenant) for _ in range(4)]
    pages = _walk(api, f"/v1/tenants/{tenant}/workspaces", world.key("reader", tenant), 2)
    assert [w["slug"] for p in pages for w in p["items"]] == created
    assert [len(p["items"]) for p in pages] == [2, 2]


def test_audit_events_page_newest_first(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    slug = world.tenant()
    for i in range(4):
        api.patch(f"/v1/tenants/{slug}", admin_key, json={"display_name": f"n{i}"})
    pages = _walk(api, "/v1/audit-events", admin_key, 2, target_id=tenant_id(database, slug))
    events = [e for p in pages for e in p["items"]]
    assert [e["action"] for e in events] == ["tenant.update"] * 4 + ["tenant.create"]
    assert [e["after"]["display_name"] for e in events[:4]] == ["n3", "n2", "n1", "n0"]


def test_api_keys_page_with_a_tenant_filter(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    slug = world.tenant()
    keys = [key_id_of(database, world.key("reader", slug)) for _ in range(3)]
    pages = _walk(api, "/v1/api-keys", admin_key, 1, tenant=slug)
    assert [k["id"] for p in pages for k in p["items"]] == keys


def test_endpoints_page_and_the_default_page_size_is_50(api: ApiClient, world: World) -> None:
    tenant = world.tenant()
    ws = world.workspace(tenant)
    names = [f"ep-{i:03d}" for i in range(55)]
    world.endpoints(tenant, ws, names)
    key = world.key("reader", tenant)
    path = f"/v1/tenants/{tenant}/workspaces/{ws}/endpoints"
    first = api.get(path, key).get_json()
    assert len(first["items"]) == 50
    rest = api.get(path, key, query_string={"cursor": first["next_cursor"]}).get_json()
    assert [e["name"] for e in first["items"] + rest["items"]] == names
    assert rest["next_cursor"] is None


def test_a_cursor_from_one_list_pages_another_list_of_the_same_kind_safely(
    api: ApiClient, world: World
) -> None:
    # Cursors carry only a position: using one on another tenant's list never shows foreign rows.
    first, second = world.tenant(), world.tenant()
    for t in (first, second):
        for _ in range(2):
            world.workspace(t)
    key_first = world.key("reader", first)
    cursor = api.get(
        f"/v1/tenants/{first}/workspaces", key_first, query_string={"limit": "1"}
    ).get_json()["next_cursor"]
    page = api.get(
        f"/v1/tenants/{first}/workspaces", key_first, query_string={"cursor": cursor}
    ).get_json()
    assert {w["tenant"] for w in page["items"]} == {first}
