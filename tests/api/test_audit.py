"""The audit trail: one event per change, with actor and request id; filtered per tenant."""

from __future__ import annotations

import re

from emulator.testing import Sandbox
from service.db.session import Database
from tests.api.helpers import audit_count, key_id_of, tenant_id
from tests.support.api import ApiClient, World, new_guid, unique


def test_every_mutation_writes_exactly_one_event_with_actor_and_request_id(
    api: ApiClient, database: Database, admin_key: str, sandbox: Sandbox
) -> None:
    actor = key_id_of(database, admin_key)
    slug, ws = unique("t"), unique("w")
    steps = [
        (
            "POST",
            "/v1/tenants",
            {"slug": slug, "display_name": "A", "entra_tenant_id": sandbox.tenant_id},
            "tenant.create",
        ),
        ("PATCH", f"/v1/tenants/{slug}", {"display_name": "B"}, "tenant.update"),
        (
            "PUT",
            f"/v1/tenants/{slug}/credential",
            {
                "kind": "service_principal",
                "client_id": sandbox.client_id,
                "client_secret": sandbox.client_secret,
            },
            "credential.put",
        ),
        (
            "POST",
            f"/v1/tenants/{slug}/workspaces",
            {
                "slug": ws,
                "subscription_id": sandbox.subscription_id,
                "resource_group": "rg",
                "workspace_name": unique("mlw"),
            },
            "workspace.create",
        ),
        ("PATCH", f"/v1/tenants/{slug}/workspaces/{ws}", {"display_name": "W"}, "workspace.update"),
        ("POST", "/v1/api-keys", {"name": "k", "role": "reader"}, "api_key.create"),
        ("DELETE", f"/v1/tenants/{slug}/workspaces/{ws}", None, "workspace.delete"),
        ("DELETE", f"/v1/tenants/{slug}", None, "tenant.delete"),
    ]
    for i, (method, path, body, action) in enumerate(steps):
        request_id = f"req-{i}-{unique('x')}"
        count = audit_count(database)
        response = api.call(
            method, path, admin_key, json=body, headers={"X-Request-ID": request_id}
        )
        assert response.status_code in (200, 201, 204), response.get_data(as_text=True)
        assert response.headers["X-Request-ID"] == request_id
        assert audit_count(database) == count + 1
        page = api.get(
            "/v1/audit-events", admin_key, query_string={"limit": "1", "action": action}
        ).get_json()
        (event,) = page["items"]
        assert (event["actor_key_id"], event["request_id"]) == (actor, request_id)


def test_events_are_listed_newest_first_and_filter_by_action_and_target(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    slug = world.tenant()
    tid = tenant_id(database, slug)
    for name in ("one", "two"):
        api.patch(f"/v1/tenants/{slug}", admin_key, json={"display_name": name})
    events = api.get("/v1/audit-events", admin_key, query_string={"target_id": tid}).get_json()
    assert [e["action"] for e in events["items"]] == [
        "tenant.update",
        "tenant.update",
        "tenant.create",
    ]
    assert [e["after"]["display_name"] for e in events["items"][:2]] == ["two", "one"]
    ids = [e["id"] for e in events["items"]]
    assert ids == sorted(ids, reverse=True)
    updates = api.get(
        "/v1/audit-events", admin_key, query_string={"target_id": tid, "action": "tenant.update"}
    ).get_json()["items"]
    assert len(updates) == 2


def test_a_tenant_bound_reader_sees_only_its_tenants_events(
    api: ApiClient, world: World, database: Database
) -> None:
    mine, other = world.tenant(), world.tenant()
    key = world.key("reader", mine)
    mine_id = tenant_id(database, mine)
    own = api.get("/v1/audit-events", key, query_string={"tenant": mine}).get_json()["items"]
    assert own
    assert {e["tenant_id"] for e in own} == {mine_id}
    unfiltered = api.get("/v1/audit-events", key).get_json()["items"]
    assert {e["tenant_id"] for e in unfiltered} == {mine_id}
    foreign = api.get(
        "/v1/audit-events", key, query_string={"target_id": tenant_id(database, other)}
    ).get_json()
    assert foreign == {"items": [], "next_cursor": None}


def test_an_invalid_request_id_is_replaced_by_a_generated_one(
    api: ApiClient, admin_key: str
) -> None:
    for supplied in ("", "has space", "x" * 129, "semi;colon"):
        response = api.get(
            "/v1/tenants",
            admin_key,
            headers={"X-Request-ID": supplied},
            query_string={"limit": "1"},
        )
        assert response.status_code == 200
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    echoed = api.get("/healthz", headers={"X-Request-ID": "abc.DEF_123-x"})
    assert echoed.headers["X-Request-ID"] == "abc.DEF_123-x"


def test_reads_write_no_audit_events(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    slug = world.tenant()
    count = audit_count(database)
    api.get(f"/v1/tenants/{slug}", admin_key)
    api.get("/v1/api-keys", admin_key, query_string={"tenant": slug})
    api.get("/v1/audit-events", admin_key, query_string={"limit": "1"})
    assert audit_count(database) == count


def test_each_role_sees_what_its_role_may_read_of_an_event(
    api: ApiClient, world: World, database: Database
) -> None:
    """Readers: who did what to which object, and when; details only of their own events.
    Operators: also the details of configuration they can read. Admins: everything."""
    from service.domain.access import Principal, Role
    from service.services import audit
    from service.services.context import CallContext

    slug = world.tenant()
    tid = tenant_id(database, slug)
    admin, operator, reader = (world.key(r, slug) for r in ("admin", "operator", "reader"))
    created = api.post(
        "/v1/api-keys", admin, json={"name": unique("k"), "role": "reader", "tenant": slug}
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    prefix = created.get_json()["api_key"]["prefix"]
    client_id = new_guid()
    api.put(
        f"/v1/tenants/{slug}/credential",
        admin,
        json={"kind": "service_principal", "client_id": client_id, "client_secret": "s3cret"},
    )
    assert api.put(f"/v1/tenants/{slug}/policy", admin, json={"app_insights": True}).status_code
    with database.unit_of_work() as uow:
        for key, text in ((admin, "AppRequests | where Name == 'payroll'"), (reader, "mine")):
            actor = Principal(key_id_of(database, key), Role.READER, tid)
            audit.record(
                uow,
                CallContext(actor),
                action="logs.query",
                target_type="workspace",
                target_id=new_guid(),
                tenant_id=tid,
                after={"query": text},
            )
        uow.commit()

    def seen(key: str) -> dict[str, list[dict[str, object]]]:
        items = api.get("/v1/audit-events", key, query_string={"tenant": slug}).get_json()["items"]
        by_action: dict[str, list[dict[str, object]]] = {}
        for e in items:
            by_action.setdefault(str(e["action"]), []).append(e)
        return by_action

    everything = seen(admin)
    for role_key in (operator, reader):
        text = api.get("/v1/audit-events", role_key, query_string={"tenant": slug}).get_data(
            as_text=True
        )
        for secret in (prefix, client_id, "payroll"):
            assert secret not in text, (secret, role_key == reader)
        events = seen(role_key)
        # The summary is there for every event...
        assert sorted(events) == sorted(everything)
        for action in ("api_key.create", "credential.put"):
            for event in events[action]:
                assert (event["before"], event["after"], event["details_hidden"]) == (
                    None,
                    None,
                    True,
                )
    # ... a reader's own query is its own to see, an operator sees the policy it can read.
    r_events, o_events = seen(reader), seen(operator)
    assert [e["after"] for e in r_events["logs.query"] if e["after"]] == [{"query": "mine"}]
    assert [e["after"] is None for e in r_events["policy.put"]] == [True]
    assert all(e["after"] is not None for e in o_events["policy.put"])
    # Admins see everything, key prefixes and credential identities included.
    key_id = created.get_json()["api_key"]["id"]
    (made,) = [e for e in everything["api_key.create"] if e["target_id"] == key_id]
    assert made["after"]["prefix"] == prefix
    assert everything["credential.put"][0]["after"]["client_id"] == client_id
    assert not any(e["details_hidden"] for events in everything.values() for e in events)
