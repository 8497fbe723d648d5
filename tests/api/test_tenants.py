"""Tenants: create, read, list, update, delete, and the audit event each change writes."""

from __future__ import annotations

from service.db.session import Database
from tests.api.helpers import Fingerprint, assert_problem, audit_events, key_id_of, tenant_id
from tests.support.api import ApiClient, World, new_guid, unique


def _new_tenant(**overrides: str) -> dict[str, str]:
    return {
        "slug": unique("t"),
        "display_name": "Contoso",
        "entra_tenant_id": new_guid(),
        **overrides,
    }


def test_a_global_admin_creates_a_tenant_and_reads_it_back(
    api: ApiClient, database: Database, admin_key: str
) -> None:
    body = _new_tenant(entra_tenant_id=new_guid().upper())
    created = api.post("/v1/tenants", admin_key, json=body)
    assert created.status_code == 201
    tenant = created.get_json()
    assert tenant["slug"] == body["slug"]
    assert tenant["entra_tenant_id"] == body["entra_tenant_id"].lower()
    assert tenant["etag"] == '"1"' == created.headers["ETag"]
    assert created.headers["Location"] == f"/v1/tenants/{body['slug']}"

    read = api.get(created.headers["Location"], admin_key)
    assert read.status_code == 200
    assert read.get_json() == tenant
    assert read.headers["ETag"] == tenant["etag"]

    (event,) = audit_events(database, target_id=tenant["id"])
    assert event.action == "tenant.create"
    assert event.actor_key_id == key_id_of(database, admin_key)
    assert event.tenant_id == tenant["id"]
    assert event.before is None
    assert event.after == tenant


def test_a_tenant_bound_key_lists_only_its_own_tenant(api: ApiClient, world: World) -> None:
    mine, _other = world.tenant(), world.tenant()
    response = api.get("/v1/tenants", world.key("reader", mine))
    assert response.status_code == 200
    assert [t["slug"] for t in response.get_json()["items"]] == [mine]


def test_a_global_key_lists_every_tenant_in_creation_order(
    api: ApiClient, world: World, admin_key: str
) -> None:
    created = [world.tenant() for _ in range(3)]
    slugs: list[str] = []
    cursor = None
    while True:
        query = {"limit": "200", **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/tenants", admin_key, query_string=query).get_json()
        slugs += [t["slug"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [s for s in slugs if s in created] == created


def test_an_admin_renames_a_tenant_and_the_change_is_audited_with_before_and_after(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    slug = world.tenant()
    before = api.get(f"/v1/tenants/{slug}", admin_key).get_json()
    response = api.patch(
        f"/v1/tenants/{slug}",
        admin_key,
        json={"display_name": "Renamed"},
        headers={"X-Request-ID": "rename-1"},
    )
    assert response.status_code == 200
    after = response.get_json()
    assert after["display_name"] == "Renamed"
    assert after["etag"] == '"2"' == response.headers["ETag"]
    assert after["updated_at"] >= before["updated_at"]
    assert after["created_at"] == before["created_at"]

    (event,) = audit_events(database, target_id=before["id"], action="tenant.update")
    assert event.before == before
    assert event.after == after
    assert event.request_id == "rename-1"


def test_a_patch_that_changes_nothing_writes_nothing(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    slug = world.tenant(display_name="Same")
    current = api.get(f"/v1/tenants/{slug}", admin_key).get_json()
    before = Fingerprint.of(database)
    response = api.patch(
        f"/v1/tenants/{slug}",
        admin_key,
        json={"display_name": "Same", "entra_tenant_id": current["entra_tenant_id"].upper()},
    )
    assert response.status_code == 200
    assert response.get_json() == current
    assert Fingerprint.of(database) == before


def test_a_tenant_admin_may_rename_its_own_tenant_but_not_delete_it(
    api: ApiClient, world: World, database: Database
) -> None:
    slug = world.tenant()
    key = world.key("admin", slug)
    assert api.patch(f"/v1/tenants/{slug}", key, json={"display_name": "Mine"}).status_code == 200
    before = Fingerprint.of(database)
    assert_problem(api.delete(f"/v1/tenants/{slug}", key), 403, "forbidden")
    assert Fingerprint.of(database) == before


def test_a_duplicate_slug_is_a_conflict_and_changes_nothing(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    slug = world.tenant()
    before = Fingerprint.of(database)
    assert_problem(api.post("/v1/tenants", admin_key, json=_new_tenant(slug=slug)), 409, "conflict")
    assert Fingerprint.of(database) == before


def test_a_tenant_with_workspaces_cannot_be_deleted(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    slug = world.tenant()
    world.workspace(slug)
    before = Fingerprint.of(database)
    assert_problem(api.delete(f"/v1/tenants/{slug}", admin_key), 409, "conflict")
    assert Fingerprint.of(database) == before
    assert api.get(f"/v1/tenants/{slug}", admin_key).status_code == 200


def test_deleting_a_tenant_deletes_its_keys_which_stop_working_at_once(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    slug = world.tenant()
    tid = tenant_id(database, slug)
    bound = world.key("reader", slug)
    bound_id = key_id_of(database, bound)
    assert api.get(f"/v1/tenants/{slug}", bound).status_code == 200

    response = api.delete(f"/v1/tenants/{slug}", admin_key)
    assert response.status_code == 204
    assert response.get_data() == b""

    assert_problem(api.get(f"/v1/tenants/{slug}", admin_key), 404, "not_found")
    assert_problem(api.get("/v1/tenants", bound), 401, "unauthorized")
    actions = [(e.action, e.target_id) for e in audit_events(database, tenant_id=tid)]
    assert actions == [
        ("tenant.create", tid),
        ("api_key.create", bound_id),
        ("api_key.delete", bound_id),
        ("tenant.delete", tid),
    ]
    (deleted,) = audit_events(database, tenant_id=tid, action="tenant.delete")
    assert deleted.before is not None
    assert deleted.before["slug"] == slug
    assert deleted.after is None


def test_a_deleted_slug_can_be_used_again(api: ApiClient, world: World, admin_key: str) -> None:
    slug = world.tenant()
    assert api.delete(f"/v1/tenants/{slug}", admin_key).status_code == 204
    again = api.post("/v1/tenants", admin_key, json=_new_tenant(slug=slug))
    assert again.status_code == 201
    assert again.get_json()["etag"] == '"1"'


def test_a_missing_tenant_is_404_on_every_verb(
    api: ApiClient, database: Database, admin_key: str
) -> None:
    path = f"/v1/tenants/{unique('missing')}"
    before = Fingerprint.of(database)
    assert_problem(api.get(path, admin_key), 404, "not_found")
    assert_problem(api.patch(path, admin_key, json={"display_name": "x"}), 404, "not_found")
    assert_problem(api.delete(path, admin_key), 404, "not_found")
    assert Fingerprint.of(database) == before
