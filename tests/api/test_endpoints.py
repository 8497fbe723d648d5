"""Endpoints: read-only views of what discovery last observed."""

from __future__ import annotations

from sqlalchemy import update

from service.db.models import Endpoint
from service.db.session import Database
from service.db.types import utcnow
from tests.api.helpers import assert_problem
from tests.support.api import ApiClient, World, unique


def test_a_reader_lists_and_reads_the_endpoints_of_a_workspace(
    api: ApiClient, world: World
) -> None:
    tenant = world.tenant()
    ws = world.workspace(tenant)
    names = [unique("ep") for _ in range(3)]
    world.endpoints(tenant, ws, names)
    key = world.key("reader", tenant)
    base = f"/v1/tenants/{tenant}/workspaces/{ws}/endpoints"

    listed = api.get(base, key)
    assert listed.status_code == 200
    items = listed.get_json()["items"]
    assert [e["name"] for e in items] == names
    assert {(e["tenant"], e["workspace"]) for e in items} == {(tenant, ws)}
    first = items[0]
    assert first["compute_type"] == "AKS"
    assert first["scoring_uri"] == f"https://scoring.example/{names[0]}/score"
    assert first["vanished_at"] is None

    read = api.get(f"{base}/{names[0]}", key)
    assert read.status_code == 200
    assert read.get_json() == first
    assert read.headers["ETag"] == first["etag"]


def test_vanished_endpoints_are_listed_only_on_request(
    api: ApiClient, world: World, database: Database
) -> None:
    tenant = world.tenant()
    ws = world.workspace(tenant)
    kept, gone = unique("kept"), unique("gone")
    world.endpoints(tenant, ws, [kept, gone])
    with database.unit_of_work() as uow:
        uow.session.execute(
            update(Endpoint).where(Endpoint.name == gone).values(vanished_at=utcnow())
        )
        uow.commit()
    key = world.key("reader", tenant)
    base = f"/v1/tenants/{tenant}/workspaces/{ws}/endpoints"

    default = api.get(base, key).get_json()["items"]
    assert [e["name"] for e in default] == [kept]
    everything = api.get(base, key, query_string={"include_vanished": "true"}).get_json()["items"]
    assert [e["name"] for e in everything] == [kept, gone]
    assert everything[1]["vanished_at"] is not None
    # A vanished endpoint can still be read directly.
    assert api.get(f"{base}/{gone}", key).status_code == 200


def test_an_unknown_endpoint_is_404(api: ApiClient, world: World) -> None:
    tenant = world.tenant()
    ws = world.workspace(tenant)
    response = api.get(
        f"/v1/tenants/{tenant}/workspaces/{ws}/endpoints/nope", world.key("reader", tenant)
    )
    assert_problem(response, 404, "not_found")


def test_endpoint_names_may_carry_dots_and_underscores(api: ApiClient, world: World) -> None:
    tenant = world.tenant()
    ws = world.workspace(tenant)
    world.endpoints(tenant, ws, ["Model_v1.2-prod"])
    response = api.get(
        f"/v1/tenants/{tenant}/workspaces/{ws}/endpoints/Model_v1.2-prod",
        world.key("reader", tenant),
    )
    assert response.status_code == 200
    assert response.get_json()["name"] == "Model_v1.2-prod"
