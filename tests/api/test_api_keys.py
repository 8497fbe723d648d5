"""API keys: the secret is shown once and only hashed; revocation is immediate and idempotent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from service.db.models import ApiKey, AuditEvent
from service.db.session import Database
from tests.api.helpers import Fingerprint, assert_problem, audit_events, key_id_of
from tests.support.api import ApiClient, World, unique


def test_the_secret_is_in_the_create_response_only(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    tenant = world.tenant()
    created = api.post(
        "/v1/api-keys", admin_key, json={"name": "ci", "role": "operator", "tenant": tenant}
    )
    assert created.status_code == 201
    body = created.get_json()
    secret, key = body["secret"], body["api_key"]
    assert secret.startswith(key["prefix"])
    assert (key["role"], key["tenant"], key["name"]) == ("operator", tenant, "ci")
    assert key["created_by"] == key_id_of(database, admin_key)
    assert created.headers["Location"] == f"/v1/api-keys/{key['id']}"

    later = [
        api.get(f"/v1/api-keys/{key['id']}", admin_key),
        api.get("/v1/api-keys", admin_key, query_string={"tenant": tenant}),
        api.get("/v1/audit-events", admin_key, query_string={"target_id": key["id"]}),
        api.get("/v1/audit-events", admin_key, query_string={"tenant": tenant}),
    ]
    assert later[0].get_json() == key
    assert later[1].get_json()["items"] == [key]
    assert [e["action"] for e in later[2].get_json()["items"]] == ["api_key.create"]
    for response in later:
        assert response.status_code == 200
        assert secret not in response.get_data(as_text=True)
        assert secret[len(key["prefix"]) :] not in response.get_data(as_text=True)

    # Neither the audit row nor the key row holds the secret.
    with database.session_factory() as s:
        row = s.scalars(select(ApiKey).where(ApiKey.id == key["id"])).one()
        events = s.scalars(select(AuditEvent).where(AuditEvent.target_id == key["id"])).all()
    assert secret not in row.key_hash
    assert [e.after for e in events] == [key]
    assert all(secret not in json.dumps([e.before, e.after]) for e in events)

    # The secret works, with the role it was given.
    assert api.get(f"/v1/tenants/{tenant}", secret).status_code == 200


def test_revoking_a_key_stops_it_at_once_and_is_idempotent(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    tenant = world.tenant()
    secret = world.key("reader", tenant)
    key_id = key_id_of(database, secret)
    assert api.get("/v1/tenants", secret).status_code == 200

    assert api.delete(f"/v1/api-keys/{key_id}", admin_key).status_code == 204
    assert_problem(api.get("/v1/tenants", secret), 401, "unauthorized")
    revoked = api.get(f"/v1/api-keys/{key_id}", admin_key).get_json()
    assert revoked["revoked_at"] is not None

    before = Fingerprint.of(database)
    assert api.delete(f"/v1/api-keys/{key_id}", admin_key).status_code == 204
    assert Fingerprint.of(database) == before
    (event,) = audit_events(database, target_id=key_id, action="api_key.revoke")
    assert event.before is not None
    assert event.before["revoked_at"] is None
    assert event.after == revoked


def test_a_tenant_admin_mints_keys_only_for_its_own_tenant(
    api: ApiClient, world: World, database: Database
) -> None:
    mine, other = world.tenant(), world.tenant()
    key = world.key("admin", mine)
    own = api.post("/v1/api-keys", key, json={"name": "k", "role": "admin", "tenant": mine})
    assert own.status_code == 201
    assert own.get_json()["api_key"]["tenant"] == mine

    before = Fingerprint.of(database)
    assert_problem(api.post("/v1/api-keys", key, json={"name": "k", "role": "reader"}), 403)
    assert_problem(
        api.post("/v1/api-keys", key, json={"name": "k", "role": "reader", "tenant": None}), 403
    )
    assert_problem(
        api.post("/v1/api-keys", key, json={"name": "k", "role": "reader", "tenant": other}), 404
    )
    assert Fingerprint.of(database) == before


def test_a_tenant_admin_lists_only_its_tenants_keys(
    api: ApiClient, world: World, database: Database
) -> None:
    mine = world.tenant()
    other = world.tenant()
    keys = [world.key("admin", mine), world.key("reader", mine)]
    world.key("reader", other)
    listed = api.get("/v1/api-keys", keys[0]).get_json()
    assert [k["id"] for k in listed["items"]] == [key_id_of(database, k) for k in keys]
    assert {k["tenant"] for k in listed["items"]} == {mine}


def test_a_key_with_an_expiry_stops_working_when_it_expires(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = api.post(
        "/v1/api-keys", admin_key, json={"name": "temp", "role": "reader", "expires_at": expires}
    )
    assert created.status_code == 201
    body = created.get_json()
    assert body["api_key"]["expires_at"].endswith("Z")
    assert api.get("/v1/tenants", body["secret"], query_string={"limit": "1"}).status_code == 200

    with database.unit_of_work() as uow:
        row = uow.session.get(ApiKey, body["api_key"]["id"])
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        uow.commit()
    assert_problem(api.get("/v1/tenants", body["secret"]), 401, "unauthorized")


def test_rfc3339_expiry_spellings_are_accepted_and_impossible_ones_are_400(
    api: ApiClient, database: Database, admin_key: str
) -> None:
    # Regression: a lower-case 't'/'z' (valid RFC 3339) and a year-9999 instant that overflows
    # on conversion to UTC used to answer 500.
    for spelling in ("2999-01-01t00:00:00z", "2999-01-01T00:00:00.1234567+02:00"):
        response = api.post(
            "/v1/api-keys", admin_key, json={"name": "k", "role": "reader", "expires_at": spelling}
        )
        assert response.status_code == 201, spelling
    before = Fingerprint.of(database)
    for bad in (
        "9999-12-31T23:59:59-01:00",
        "2000-01-01T00:00:00Z",
        "2999-01-01T00:00:00",
        "2999-13-01T00:00:00Z",
        "tomorrow",
    ):
        response = api.post(
            "/v1/api-keys", admin_key, json={"name": "k", "role": "reader", "expires_at": bad}
        )
        assert_problem(response, 400, "validation_failed")
    assert Fingerprint.of(database) == before


def test_an_unknown_key_id_is_404(api: ApiClient, database: Database, admin_key: str) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    before = Fingerprint.of(database)
    assert_problem(api.get(f"/v1/api-keys/{missing}", admin_key), 404, "not_found")
    assert_problem(api.delete(f"/v1/api-keys/{missing}", admin_key), 404, "not_found")
    assert Fingerprint.of(database) == before


def test_a_key_name_is_free_text_and_need_not_be_unique(api: ApiClient, admin_key: str) -> None:
    name = unique("Deploy bot (ci) ☃")
    for _ in range(2):
        response = api.post("/v1/api-keys", admin_key, json={"name": name, "role": "reader"})
        assert response.status_code == 201
        assert response.get_json()["api_key"]["name"] == name


def test_whoami_tells_every_key_its_own_role_and_tenant_and_never_a_secret(
    api: ApiClient, world: World, database: Database
) -> None:
    tenant = world.tenant()
    for role, bound in (("reader", True), ("operator", False), ("admin", True)):
        secret = world.key(role, tenant if bound else None)
        response = api.get("/v1/whoami", secret)
        assert response.status_code == 200, response.get_data(as_text=True)
        me = response.get_json()
        assert me["id"] == key_id_of(database, secret)
        assert (me["role"], me["tenant"]) == (role, tenant if bound else None)
        assert secret.startswith(me["prefix"])
        assert secret[len(me["prefix"]) :] not in response.get_data(as_text=True)


def test_whoami_without_a_key_is_401(api: ApiClient) -> None:
    response = api.get("/v1/whoami", "amlcp_not-a-key")
    assert_problem(response, 401, "unauthorized")
