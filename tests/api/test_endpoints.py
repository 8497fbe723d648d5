"""Endpoints: read-only views of what discovery last observed."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import select, update

from service.db.models import Endpoint, Operation, Tenant, Workspace, WorkspaceSync
from service.db.session import Database, UnitOfWork
from service.db.types import utcnow
from service.services import endpoints as endpoint_views
from tests.api.helpers import assert_problem
from tests.support.api import ApiClient, World, unique
from tests.support.rows import operation_row


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


def test_pages_and_the_compliance_summary_say_what_each_endpoint_says(
    api: ApiClient, world: World, database: Database
) -> None:
    """The listing writes its JSON by hand and judges a page's endpoints case by case, the
    summary judges the tenant's from columns (issue 16): both must say exactly what reading
    each endpoint says (``jsonable`` of its view), over every state and policy scope."""
    tenant = world.tenant()
    ws = world.workspace(tenant)
    names = [f"svc{i}" for i in range(6)]
    world.endpoints(tenant, ws, names)
    with database.unit_of_work() as uow:
        workspace = _workspace(uow, tenant, ws)
        endpoint_views.record_observations(
            uow,
            workspace,
            [
                endpoint_views.ObservedEndpoint(
                    name=f"online.{d}",
                    compute_type="Managed",
                    state="Succeeded",
                    app_insights_enabled=d == "blue",
                    data_collection_enabled=False,
                    scoring_uri=None,
                    azure_updated_at=utcnow(),
                    kind="managed_online",
                    online_endpoint="online",
                    deployment=d,
                )
                for d in ("blue", "green")
            ],
            complete=False,
        )
        uow.commit()
    admin = world.key("admin")
    base = f"/v1/tenants/{tenant}"
    assert api.put(f"{base}/policy", admin, json={"app_insights": True}).status_code == 202
    wpath = f"{base}/workspaces/{ws}"
    r = api.put(f"{wpath}/policy", admin, json={"model_data_collection": True, "mode": "audit"})
    assert r.status_code == 202
    r = api.put(f"{wpath}/endpoints/online/policy", admin, json={"app_insights": False})
    assert r.status_code == 202
    r = api.put(f"{wpath}/endpoints/svc1/policy", admin, json={"mode": "enforce"})
    assert r.status_code == 202
    with database.unit_of_work() as uow:  # one operation failed, one still queued
        ops = list(uow.session.scalars(select(Operation).order_by(Operation.endpoint_name)))
        assert len(ops) >= 2
        ops[0].state, ops[0].finished_at = "failed", utcnow()
        uow.commit()

    key = world.key("reader", tenant)
    items, cursor = [], None
    while True:
        query = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = api.get(f"{wpath}/endpoints", key, query_string=query).get_json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(e["name"] for e in items) == sorted([*names, "online.blue", "online.green"])
    for item in items:
        assert api.get(f"{wpath}/endpoints/{item['name']}", key).get_json() == item
    states = Counter(e["monitoring"]["compliance"] for e in items)
    assert len(states) >= 3, states

    report = api.get(f"{base}/compliance", key).get_json()
    # The policy named "online" governs online.blue and online.green: it names no missing
    # endpoint (it was counted once more as unknown before).
    assert report["totals"] == {**dict.fromkeys(report["totals"], 0), **states}
    [summary] = report["workspaces"]
    offenders = summary["offenders"]
    assert [(o["endpoint"], o["compliance"], o["reason"]) for o in offenders] == [
        (e["name"], e["monitoring"]["compliance"], e["monitoring"]["reason"])
        for e in sorted(items, key=lambda e: e["name"])
        if e["monitoring"]["compliance"] != "compliant"
    ]


def test_a_page_judges_operations_and_lost_access_as_reading_each_endpoint_does(
    api: ApiClient, world: World, database: Database
) -> None:
    """A page reads each endpoint's operations and its workspace's access with its own rows
    (issue 16), reading one endpoint in separate statements: the latest finished operation
    decides (a failure followed by a success is not a failure), an active one shows, and a
    workspace whose credential discovery could not use makes every endpoint unknown."""
    tenant = world.tenant()
    ws = world.workspace(tenant)
    names = ["recovered", "regressed", "busy", "quiet"]
    world.endpoints(tenant, ws, names)
    admin = world.key("admin")
    wpath = f"/v1/tenants/{tenant}/workspaces/{ws}"
    # An audit policy: nothing is queued by it, so the operations below are the only ones.
    r = api.put(f"{wpath}/policy", admin, json={"app_insights": True, "mode": "audit"})
    assert r.status_code == 202
    t0 = utcnow() - timedelta(hours=1)
    history = {
        "recovered": [("failed", 0), ("succeeded", 10)],
        "regressed": [("succeeded", 0), ("failed", 10)],
        "busy": [("failed", 0), ("queued", 20)],
    }
    with database.unit_of_work() as uow:
        workspace = _workspace(uow, tenant, ws)
        for name, ops in history.items():
            for state, minutes in ops:
                at = t0 + timedelta(minutes=minutes)
                uow.session.add(_operation(workspace, name, state, at))
        workspace_id = workspace.id
        uow.commit()
    key = world.key("reader", tenant)

    def listed() -> dict[str, dict[str, object]]:
        items = api.get(f"{wpath}/endpoints", key).get_json()["items"]
        for item in items:
            assert api.get(f"{wpath}/endpoints/{item['name']}", key).get_json() == item
        return {item["name"]: item["monitoring"] for item in items}

    seen = listed()
    assert seen["busy"]["active_operation"] is not None
    assert [n for n in names if seen[n]["active_operation"]] == ["busy"]
    assert seen["regressed"]["compliance"] != seen["recovered"]["compliance"]
    assert seen["recovered"]["compliance"] == seen["quiet"]["compliance"]

    with database.unit_of_work() as uow:
        sync = uow.session.get(WorkspaceSync, workspace_id)
        if sync is None:
            sync = WorkspaceSync(workspace_id=workspace_id, next_sync_at=utcnow())
            uow.session.add(sync)
        sync.last_error_code = "credential_rejected"
        uow.commit()
    lost = listed()
    assert {m["compliance"] for m in lost.values()} == {"unknown"}


def test_the_summary_judges_endpoints_that_look_alike_by_their_own_facts(
    api: ApiClient, world: World, database: Database
) -> None:
    """The summary decides endpoints with nothing particular (no policy of their own or of
    their online endpoint, no operation on record) once per distinct observation (issue 16).
    Here every endpoint looks the same to Azure; an own policy, an online endpoint's policy,
    an active or a failed operation must still decide for the one endpoint that has it, before
    and after the plain ones in name order."""
    tenant = world.tenant()
    ws = world.workspace(tenant)
    v1 = ["a-own", "b-busy", "c-failed", "d-plain", "e-plain", "z-own"]
    online = ["m.blue", "m.green", "n.blue"]

    def seen(name: str) -> endpoint_views.ObservedEndpoint:
        endpoint, _, deployment = name.partition(".")
        return endpoint_views.ObservedEndpoint(
            name=name,
            compute_type="Managed" if deployment else "AKS",
            state="Healthy",
            app_insights_enabled=False,
            data_collection_enabled=False,
            scoring_uri=None,
            azure_updated_at=None,
            kind="managed_online" if deployment else None,
            online_endpoint=endpoint if deployment else None,
            deployment=deployment or None,
        )

    with database.unit_of_work() as uow:
        workspace = _workspace(uow, tenant, ws)
        endpoint_views.record_observations(
            uow, workspace, [seen(n) for n in v1 + online], complete=True
        )
        for name, state in (("b-busy", "queued"), ("c-failed", "failed")):
            uow.session.add(_operation(workspace, name, state, utcnow()))
        uow.commit()
    admin = world.key("admin")
    base = f"/v1/tenants/{tenant}"
    wpath = f"{base}/workspaces/{ws}"
    # Audit everywhere: the policies queue nothing, the operations above are the only ones.
    r = api.put(f"{base}/policy", admin, json={"app_insights": True, "mode": "audit"})
    assert r.status_code == 202
    for own in ("a-own", "z-own", "m"):
        r = api.put(f"{wpath}/endpoints/{own}/policy", admin, json={"app_insights": False})
        assert r.status_code == 202, r.get_json()

    key = world.key("reader", tenant)
    each = {
        name: api.get(f"{wpath}/endpoints/{name}", key).get_json()["monitoring"]
        for name in v1 + online
    }
    assert {name: m["compliance"] for name, m in each.items()} == {
        "a-own": "compliant",
        "b-busy": "pending",
        "c-failed": "failed",
        "d-plain": "drifted",
        "e-plain": "drifted",
        "z-own": "compliant",
        "m.blue": "compliant",
        "m.green": "compliant",
        "n.blue": "drifted",
    }
    report = api.get(f"{base}/compliance", key).get_json()
    states = Counter(m["compliance"] for m in each.values())
    assert report["totals"] == {**dict.fromkeys(report["totals"], 0), **states}
    [summary] = report["workspaces"]
    assert [(o["endpoint"], o["compliance"], o["reason"]) for o in summary["offenders"]] == [
        (name, m["compliance"], m["reason"])
        for name, m in sorted(each.items())
        if m["compliance"] != "compliant"
    ]


def test_the_operations_these_tests_add_are_ones_a_global_key_lists_by_the_contract(
    api: ApiClient, world: World, database: Database
) -> None:
    """The rows ``_operation`` adds stay in the session's database after their test, where a
    global key's ``GET /v1/operations`` in any later test lists them, checked against the
    contract (``tests/api/test_roles.py`` failed so in CI, in one order: they were made with a
    cause, ``test``, that the service never gives and the contract does not allow)."""
    tenant = world.tenant()
    ws = world.workspace(tenant)
    states = ["queued", "running", "succeeded", "failed", "cancelled"]
    world.endpoints(tenant, ws, states)  # an endpoint each: one active operation per endpoint
    with database.unit_of_work() as uow:
        workspace = _workspace(uow, tenant, ws)
        ops = [_operation(workspace, state, state, utcnow()) for state in states]
        uow.session.add_all(ops)
        uow.session.flush()
        added = {op.id for op in ops}
        uow.commit()
    r = api.get("/v1/operations", world.key("admin"), query_string={"tenant": tenant})
    assert r.status_code == 200
    assert {op["id"] for op in r.get_json()["items"]} == added


def _workspace(uow: UnitOfWork, tenant: str, ws: str) -> Workspace:
    found = uow.session.scalar(
        select(Workspace)
        .join(Tenant, Tenant.id == Workspace.tenant_id)
        .where(Tenant.slug == tenant, Workspace.slug == ws)
    )
    assert found is not None
    return found


def _operation(workspace: Workspace, name: str, state: str, at: datetime) -> Operation:
    """An operation of ``name`` in ``state``, created (and finished, unless active) at ``at``.

    Its kind and cause are ones the service makes (the builder's): the rows stay in the test
    database, and a global key's ``GET /v1/operations`` in a later test lists them against the
    contract's enums."""
    return operation_row(
        workspace,
        name,
        state=state,
        created_at=at,
        finished_at=None if state in ("queued", "running") else at,
    )
