"""Workspaces: CRUD under a tenant, uniqueness, immutable AML coordinates, cascading delete."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from emulator.testing import Sandbox
from service.db.models import Endpoint
from service.db.session import Database
from tests.api.helpers import Fingerprint, assert_problem, audit_events, key_id_of
from tests.support.api import ApiClient, World, new_guid, unique

APP_INSIGHTS = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-obs"
    "/providers/Microsoft.Insights/components/appi-prod"
)


def _new_workspace(**overrides: Any) -> dict[str, Any]:
    return {
        "slug": unique("w"),
        "subscription_id": new_guid(),
        "resource_group": "rg-ml",
        "workspace_name": unique("mlw"),
        **overrides,
    }


def test_an_admin_registers_a_workspace_and_reads_it_back(
    api: ApiClient, world: World, database: Database, admin_key: str, sandbox: Sandbox
) -> None:
    tenant = world.azure_tenant(sandbox)
    body = _new_workspace(
        display_name="Prod",
        subscription_id=sandbox.subscription_id.upper(),
        app_insights_resource_id=APP_INSIGHTS,
        log_analytics_workspace_id=None,
    )
    created = api.post(f"/v1/tenants/{tenant}/workspaces", admin_key, json=body)
    assert created.status_code == 201
    ws = created.get_json()
    assert ws["tenant"] == tenant
    assert ws["subscription_id"] == body["subscription_id"].lower()
    assert ws["app_insights_resource_id"] == APP_INSIGHTS
    assert ws["log_analytics_workspace_id"] is None
    assert created.headers["ETag"] == ws["etag"] == '"1"'
    assert created.headers["Location"] == f"/v1/tenants/{tenant}/workspaces/{body['slug']}"

    read = api.get(created.headers["Location"], admin_key)
    assert read.get_json() == ws
    listed = api.get(f"/v1/tenants/{tenant}/workspaces", admin_key).get_json()
    assert listed == {"items": [ws], "next_cursor": None}

    (event,) = audit_events(database, target_id=ws["id"])
    assert (event.action, event.after) == ("workspace.create", ws)
    assert event.actor_key_id == key_id_of(database, admin_key)


def test_a_workspace_slug_is_unique_within_its_tenant_only(
    api: ApiClient, world: World, database: Database, admin_key: str, sandbox: Sandbox
) -> None:
    first, second = world.azure_tenant(sandbox), world.azure_tenant(sandbox)
    slug = world.workspace(first)
    body = _new_workspace(slug=slug, subscription_id=sandbox.subscription_id)
    before = Fingerprint.of(database)
    duplicate = api.post(f"/v1/tenants/{first}/workspaces", admin_key, json=body)
    assert_problem(duplicate, 409, "conflict")
    assert Fingerprint.of(database) == before
    elsewhere = api.post(f"/v1/tenants/{second}/workspaces", admin_key, json=body)
    assert elsewhere.status_code == 201


def test_the_same_aml_workspace_cannot_be_registered_twice_in_a_tenant(
    api: ApiClient, world: World, database: Database, admin_key: str, sandbox: Sandbox
) -> None:
    tenant = world.azure_tenant(sandbox)
    body = _new_workspace(subscription_id=sandbox.subscription_id)
    assert api.post(f"/v1/tenants/{tenant}/workspaces", admin_key, json=body).status_code == 201
    before = Fingerprint.of(database)
    again = api.post(
        f"/v1/tenants/{tenant}/workspaces", admin_key, json={**body, "slug": unique("w")}
    )
    assert_problem(again, 409, "conflict")
    assert Fingerprint.of(database) == before


def test_an_admin_links_and_unlinks_telemetry_stores(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    tenant = world.tenant()
    slug = world.workspace(tenant)
    path = f"/v1/tenants/{tenant}/workspaces/{slug}"
    la = new_guid()
    linked = api.patch(
        path,
        admin_key,
        json={"app_insights_resource_id": APP_INSIGHTS, "log_analytics_workspace_id": la.upper()},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert linked.status_code == 200
    assert linked.get_json()["log_analytics_workspace_id"] == la
    assert linked.headers["ETag"] == '"2"'

    unlinked = api.patch(path, admin_key, json={"app_insights_resource_id": None})
    assert unlinked.get_json()["app_insights_resource_id"] is None
    assert unlinked.get_json()["etag"] == '"3"'
    updates = audit_events(database, target_id=linked.get_json()["id"], action="workspace.update")
    assert [e.after["etag"] for e in updates if e.after] == ['"2"', '"3"']


def test_a_no_op_workspace_patch_writes_nothing(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    tenant = world.tenant()
    slug = world.workspace(tenant)
    before = Fingerprint.of(database)
    response = api.patch(
        f"/v1/tenants/{tenant}/workspaces/{slug}", admin_key, json={"display_name": None}
    )
    assert response.status_code == 200
    assert response.get_json()["etag"] == '"1"'
    assert Fingerprint.of(database) == before


def test_the_aml_coordinates_of_a_workspace_are_immutable(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    tenant = world.tenant()
    slug = world.workspace(tenant)
    before = Fingerprint.of(database)
    for field, value in (
        ("subscription_id", new_guid()),
        ("resource_group", "rg-other"),
        ("workspace_name", "other-ws"),
        ("slug", "renamed"),
    ):
        response = api.patch(
            f"/v1/tenants/{tenant}/workspaces/{slug}", admin_key, json={field: value}
        )
        problem = assert_problem(response, 400, "validation_failed")
        assert problem["errors"] == [
            {"field": f"body.{field}", "message": "is not a field this request accepts"}
        ]
    assert Fingerprint.of(database) == before


def test_deleting_a_workspace_deletes_its_endpoints_but_keeps_its_audit_trail(
    api: ApiClient, world: World, database: Database, admin_key: str, sandbox: Sandbox
) -> None:
    tenant = world.azure_tenant(sandbox)
    slug = world.workspace(tenant)
    world.endpoints(tenant, slug, ["ep-a", "ep-b"])
    path = f"/v1/tenants/{tenant}/workspaces/{slug}"
    ws = api.get(path, admin_key).get_json()

    assert api.delete(path, admin_key).status_code == 204

    assert_problem(api.get(path, admin_key), 404, "not_found")
    assert_problem(api.get(f"{path}/endpoints", admin_key), 404, "not_found")
    with database.engine.connect() as conn:
        left = conn.execute(
            select(func.count()).select_from(Endpoint).where(Endpoint.workspace_id == ws["id"])
        ).scalar_one()
    assert left == 0
    actions = [e.action for e in audit_events(database, target_id=ws["id"])]
    assert actions == ["workspace.create", "workspace.delete"]
    (deleted,) = audit_events(database, target_id=ws["id"], action="workspace.delete")
    assert deleted.before == ws

    # The slug is free again, and the new workspace starts with no endpoints.
    again = api.post(
        f"/v1/tenants/{tenant}/workspaces",
        admin_key,
        json=_new_workspace(slug=slug, subscription_id=sandbox.subscription_id),
    )
    assert again.status_code == 201
    assert api.get(f"{path}/endpoints", admin_key).get_json()["items"] == []


def test_a_workspace_under_a_missing_tenant_is_404(
    api: ApiClient, database: Database, admin_key: str
) -> None:
    before = Fingerprint.of(database)
    path = f"/v1/tenants/{unique('missing')}/workspaces"
    assert_problem(api.get(path, admin_key), 404, "not_found")
    assert_problem(api.post(path, admin_key, json=_new_workspace()), 404, "not_found")
    assert_problem(api.get(f"{path}/{unique('w')}", admin_key), 404, "not_found")
    assert Fingerprint.of(database) == before


def test_a_missing_workspace_is_404_on_every_verb(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    path = f"/v1/tenants/{world.tenant()}/workspaces/{unique('missing')}"
    before = Fingerprint.of(database)
    assert_problem(api.get(path, admin_key), 404, "not_found")
    assert_problem(api.patch(path, admin_key, json={"display_name": "x"}), 404, "not_found")
    assert_problem(api.delete(path, admin_key), 404, "not_found")
    assert Fingerprint.of(database) == before
