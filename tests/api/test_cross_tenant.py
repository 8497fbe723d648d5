"""The cross-tenant matrix: a key bound to tenant A, of every role, aimed at tenant B's objects.

Every route of the contract is probed (the route list comes from openapi.yaml, so a new route
fails here until it has a case). A foreign object must answer exactly like a missing one: 404,
no identifier of B that the caller did not send itself, and nothing in the database changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from service.db.models import ApiKey, Endpoint, Tenant, Workspace
from service.db.session import Database
from service.services.runtime import Runtime
from tests.api.helpers import Fingerprint, contract_operations, mentions, without_request_id
from tests.support.api import ApiClient, World, new_guid, unique
from tests.support.reconcile import add_operation, add_policy

ROLES = ("reader", "operator", "admin")


@dataclass(frozen=True)
class Target:
    """The identifiers of the tenant a probe aims at (B, or a ghost that does not exist)."""

    tenant: str
    tenant_id: str
    display_name: str
    entra: str
    workspace: str
    workspace_id: str
    subscription: str
    workspace_name: str
    endpoint: str
    endpoint_id: str
    key_id: str
    login_id: str
    operation_id: str
    tenant_etag: str = '"1"'
    workspace_etag: str = '"1"'

    def identifiers(self) -> dict[str, str]:
        return {
            "tenant": self.tenant,
            "tenant_id": self.tenant_id,
            "display_name": self.display_name,
            "entra": self.entra,
            "workspace": self.workspace,
            "workspace_id": self.workspace_id,
            "subscription": self.subscription,
            "workspace_name": self.workspace_name,
            "endpoint": self.endpoint,
            "endpoint_id": self.endpoint_id,
            "key_id": self.key_id,
            "login_id": self.login_id,
            "operation_id": self.operation_id,
        }


@dataclass
class Probe:
    method: str
    path: str
    json: dict[str, Any] | None = None
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    # Expected status per role of the tenant-bound caller (default: 404 for all).
    expect: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLES, 404))
    # For 200 answers: a check that the page holds only the caller's own objects.
    own_only: Callable[[dict[str, Any], Estate], None] | None = None

    def sent_text(self) -> str:
        return " ".join([self.path, repr(self.query), repr(self.json), repr(self.headers)]).lower()


def _only_tenant_a(body: dict[str, Any], estate: Estate) -> None:
    assert [t["slug"] for t in body["items"]] == [estate.a.tenant]


def _only_keys_of_a(body: dict[str, Any], estate: Estate) -> None:
    assert body["items"]
    assert {k["tenant"] for k in body["items"]} == {estate.a.tenant}


def _only_events_of_a(body: dict[str, Any], estate: Estate) -> None:
    assert body["items"]
    assert {e["tenant_id"] for e in body["items"]} == {estate.a.tenant_id}


def _only_operations_of_a(body: dict[str, Any], estate: Estate) -> None:
    assert body["items"]
    assert {o["tenant"] for o in body["items"]} == {estate.a.tenant}


def _own_key_of_a(body: dict[str, Any], estate: Estate) -> None:
    assert body["tenant"] == estate.a.tenant


def _empty(body: dict[str, Any], estate: Estate) -> None:
    assert body == {"items": [], "next_cursor": None}


ALL_200 = dict.fromkeys(ROLES, 200)
ALL_403 = dict.fromkeys(ROLES, 403)
ADMIN_ONLY = {"reader": 403, "operator": 403, "admin": 200}


def probes(t: Target) -> dict[tuple[str, str], list[Probe]]:
    """The case table: for each contract operation, the requests that aim it at ``t``."""
    tenant = f"/v1/tenants/{t.tenant}"
    ws = f"{tenant}/workspaces/{t.workspace}"
    stale = {"If-Match": '"999"'}
    return {
        ("get", "/v1/tenants"): [
            Probe("GET", "/v1/tenants", expect=ALL_200, own_only=_only_tenant_a)
        ],
        ("post", "/v1/tenants"): [
            # A tenant-bound key may never create tenants: 403 whether the slug is taken or not
            # (a 409 would reveal that B exists).
            Probe(
                "POST",
                "/v1/tenants",
                json={"slug": t.tenant, "display_name": "x", "entra_tenant_id": t.entra},
                expect=ALL_403,
            )
        ],
        ("get", "/v1/tenants/{tenant}"): [Probe("GET", tenant)],
        ("patch", "/v1/tenants/{tenant}"): [
            Probe("PATCH", tenant, json={"display_name": "hijacked"}),
            Probe(
                "PATCH",
                tenant,
                json={"display_name": "hijacked"},
                headers={"If-Match": t.tenant_etag},
            ),
            Probe("PATCH", tenant, json={"display_name": "hijacked"}, headers=stale),
        ],
        ("delete", "/v1/tenants/{tenant}"): [
            Probe("DELETE", tenant),  # B has a workspace: a visible tenant would answer 409
            Probe("DELETE", tenant, headers=stale),
        ],
        ("get", "/v1/tenants/{tenant}/workspaces"): [Probe("GET", f"{tenant}/workspaces")],
        ("post", "/v1/tenants/{tenant}/workspaces"): [
            Probe(
                "POST",
                f"{tenant}/workspaces",
                json={
                    "slug": t.workspace,  # taken in B: a visible tenant would answer 409
                    "subscription_id": t.subscription,
                    "resource_group": "rg-ml",
                    "workspace_name": t.workspace_name,
                },
            )
        ],
        ("get", "/v1/tenants/{tenant}/workspaces/{workspace}"): [Probe("GET", ws)],
        ("patch", "/v1/tenants/{tenant}/workspaces/{workspace}"): [
            Probe("PATCH", ws, json={"display_name": "hijacked"}),
            Probe("PATCH", ws, json={"display_name": None}, headers={"If-Match": t.workspace_etag}),
            Probe("PATCH", ws, json={"display_name": "hijacked"}, headers=stale),
        ],
        ("delete", "/v1/tenants/{tenant}/workspaces/{workspace}"): [
            Probe("DELETE", ws),
            Probe("DELETE", ws, headers={"If-Match": "*"}),
        ],
        ("get", "/v1/tenants/{tenant}/workspaces/{workspace}/endpoints"): [
            Probe("GET", f"{ws}/endpoints"),
            Probe("GET", f"{ws}/endpoints", query={"include_vanished": "true", "limit": "1"}),
        ],
        ("get", "/v1/tenants/{tenant}/workspaces/{workspace}/endpoints/{endpoint}"): [
            Probe("GET", f"{ws}/endpoints/{t.endpoint}")
        ],
        ("put", "/v1/tenants/{tenant}/credential"): [
            Probe("PUT", f"{tenant}/credential", json={"kind": "host_identity"}),
            Probe("PUT", f"{tenant}/credential", json={"kind": "host_identity"}, headers=stale),
        ],
        ("get", "/v1/tenants/{tenant}/credential"): [Probe("GET", f"{tenant}/credential")],
        ("delete", "/v1/tenants/{tenant}/credential"): [
            Probe("DELETE", f"{tenant}/credential"),
            Probe("DELETE", f"{tenant}/credential", headers={"If-Match": "*"}),
        ],
        ("post", "/v1/tenants/{tenant}/credential/verify"): [
            Probe("POST", f"{tenant}/credential/verify")
        ],
        ("post", "/v1/tenants/{tenant}/credential/device-logins"): [
            Probe("POST", f"{tenant}/credential/device-logins")
        ],
        ("get", "/v1/tenants/{tenant}/credential/device-logins/{login_id}"): [
            Probe("GET", f"{tenant}/credential/device-logins/{t.login_id}")
        ],
        ("get", "/v1/api-keys"): [
            Probe("GET", "/v1/api-keys", expect=ADMIN_ONLY, own_only=_only_keys_of_a),
            Probe("GET", "/v1/api-keys", query={"tenant": t.tenant}),
        ],
        ("post", "/v1/api-keys"): [
            Probe("POST", "/v1/api-keys", json={"name": "x", "role": "reader", "tenant": t.tenant}),
        ],
        ("get", "/v1/api-keys/{key_id}"): [Probe("GET", f"/v1/api-keys/{t.key_id}")],
        ("delete", "/v1/api-keys/{key_id}"): [Probe("DELETE", f"/v1/api-keys/{t.key_id}")],
        # The caller's own key, whatever the target: nothing of B to learn.
        ("get", "/v1/whoami"): [Probe("GET", "/v1/whoami", expect=ALL_200, own_only=_own_key_of_a)],
        ("post", "/v1/tenants/{tenant}/workspaces/{workspace}/logs/query"): [
            Probe("POST", f"{ws}/logs/query", json={"query": "AppRequests | take 1"})
        ],
        **{
            (
                "get",
                f"/v1/tenants/{{tenant}}/workspaces/{{workspace}}/endpoints/{{endpoint}}/telemetry/{v}",
            ): [Probe("GET", f"{ws}/endpoints/{t.endpoint}/telemetry/{v}")]
            for v in ("requests", "dependencies", "exceptions", "traces")
        },
        **_monitoring_probes(t, tenant, ws, stale),
        **_retention_probes(tenant, ws, stale),
        ("get", "/v1/audit-events"): [
            Probe("GET", "/v1/audit-events", expect=ALL_200, own_only=_only_events_of_a),
            Probe("GET", "/v1/audit-events", query={"tenant": t.tenant}),
            Probe(
                "GET",
                "/v1/audit-events",
                query={"target_id": t.tenant_id, "action": "tenant.create"},
                expect=ALL_200,
                own_only=_empty,
            ),
        ],
    }


def _retention_probes(
    tenant: str, ws: str, stale: dict[str, str]
) -> dict[tuple[str, str], list[Probe]]:
    """Issue 13: retention policies at two scopes, retention view, discovery, apply."""
    ws_t = "/v1/tenants/{tenant}/workspaces/{workspace}"
    storage = (
        "/subscriptions/0f6c2a1e-1b2c-4d3e-8f4a-5b6c7d8e9f01/resourceGroups/rg/providers/"
        "Microsoft.Storage/storageAccounts/hijack"
    )
    table: dict[tuple[str, str], list[Probe]] = {}
    for template, path in (
        ("/v1/tenants/{tenant}/retention-policy", f"{tenant}/retention-policy"),
        (ws_t + "/retention-policy", f"{ws}/retention-policy"),
    ):
        table[("get", template)] = [Probe("GET", path)]
        table[("put", template)] = [
            Probe("PUT", path, json={"destination_resource_id": storage}),
            Probe("PUT", path, json={"mode": "audit"}, headers=stale),
        ]
        table[("delete", template)] = [
            Probe("DELETE", path),
            Probe("DELETE", path, headers={"If-Match": "*"}),
        ]
    table[("get", "/v1/tenants/{tenant}/retention")] = [Probe("GET", f"{tenant}/retention")]
    table[("post", ws_t + "/retention/sync")] = [Probe("POST", f"{ws}/retention/sync")]
    table[("post", "/v1/tenants/{tenant}/retention/apply")] = [
        Probe("POST", f"{tenant}/retention/apply")
    ]
    return table


def _monitoring_probes(
    t: Target, tenant: str, ws: str, stale: dict[str, str]
) -> dict[tuple[str, str], list[Probe]]:
    """Issue 5: policies at three scopes, discovery, apply, compliance, operations, logs."""
    ws_t = "/v1/tenants/{tenant}/workspaces/{workspace}"
    ep_t = ws_t + "/endpoints/{endpoint}"
    ep = f"{ws}/endpoints/{t.endpoint}"
    table: dict[tuple[str, str], list[Probe]] = {}
    for template, path in (
        ("/v1/tenants/{tenant}/policy", f"{tenant}/policy"),
        (ws_t + "/policy", f"{ws}/policy"),
        (ep_t + "/policy", f"{ep}/policy"),
    ):
        table[("get", template)] = [Probe("GET", path)]
        table[("put", template)] = [
            Probe("PUT", path, json={"app_insights": False}),
            Probe("PUT", path, json={"mode": "audit"}, headers=stale),
        ]
        table[("delete", template)] = [
            Probe("DELETE", path),
            Probe("DELETE", path, headers={"If-Match": "*"}),
        ]
    table[("post", ws_t + "/sync")] = [Probe("POST", f"{ws}/sync")]
    table[("post", ep_t + "/apply")] = [Probe("POST", f"{ep}/apply")]
    table[("post", ws_t + "/apply")] = [Probe("POST", f"{ws}/apply")]
    table[("post", "/v1/tenants/{tenant}/apply")] = [Probe("POST", f"{tenant}/apply")]
    table[("get", "/v1/tenants/{tenant}/compliance")] = [Probe("GET", f"{tenant}/compliance")]
    table[("get", ep_t + "/container-logs")] = [
        Probe("GET", f"{ep}/container-logs", query={"tail": "5"})
    ]
    table[("get", "/v1/operations")] = [
        Probe("GET", "/v1/operations", expect=ALL_200, own_only=_only_operations_of_a),
        Probe("GET", "/v1/operations", query={"tenant": t.tenant}),
    ]
    table[("get", "/v1/operations/{operation_id}")] = [
        Probe("GET", f"/v1/operations/{t.operation_id}")
    ]
    table[("post", "/v1/operations/{operation_id}/cancel")] = [
        Probe("POST", f"/v1/operations/{t.operation_id}/cancel")
    ]
    return table


@dataclass
class Estate:
    """Tenant A (the caller's) and tenant B (the victim), both fully populated."""

    a: Target
    b: Target
    ghost: Target
    keys_of_a: dict[str, str]


def _populate(world: World, database: Database, label: str) -> Target:
    slug = world.tenant(display_name=unique(f"{label} display"))
    ws = world.workspace(slug, display_name=unique(f"{label} ws"))
    endpoint = unique(f"{label}-ep")
    world.endpoints(slug, ws, [endpoint, unique(f"{label}-ep")])
    world.key("reader", slug)
    login_id = world.delegated_credential(slug)
    add_policy(world.rt, slug)
    add_policy(world.rt, slug, ws)
    add_policy(world.rt, slug, ws, endpoint)
    operation_id = add_operation(database, slug, ws, unique(f"{label}-queued"))
    with database.session_factory() as s:
        t = s.scalars(select(Tenant).where(Tenant.slug == slug)).one()
        w = s.scalars(select(Workspace).where(Workspace.tenant_id == t.id)).one()
        e = s.scalars(select(Endpoint).where(Endpoint.name == endpoint)).one()
        k = s.scalars(select(ApiKey).where(ApiKey.tenant_id == t.id)).one()
        return Target(
            tenant=slug,
            tenant_id=t.id,
            display_name=t.display_name,
            entra=t.entra_tenant_id,
            workspace=ws,
            workspace_id=w.id,
            subscription=w.subscription_id,
            workspace_name=w.workspace_name,
            endpoint=endpoint,
            endpoint_id=e.id,
            key_id=k.id,
            login_id=login_id,
            operation_id=operation_id,
            tenant_etag=f'"{t.version}"',
            workspace_etag=f'"{w.version}"',
        )


def _ghost() -> Target:
    return Target(
        tenant=unique("ghost"),
        tenant_id=str(uuid.uuid4()),
        display_name=unique("ghost display"),
        entra=new_guid(),
        workspace=unique("ghostws"),
        workspace_id=str(uuid.uuid4()),
        subscription=new_guid(),
        workspace_name=unique("ghostmlw")[:30],
        endpoint=unique("ghost-ep"),
        endpoint_id=str(uuid.uuid4()),
        key_id=str(uuid.uuid4()),
        login_id=str(uuid.uuid4()),
        operation_id=str(uuid.uuid4()),
    )


@pytest.fixture(scope="module")
def estate(database: Database, runtime: Runtime) -> Estate:
    world = World(runtime)
    a = _populate(world, database, "a")
    b = _populate(world, database, "b")
    keys = {role: world.key(role, a.tenant) for role in ROLES}
    return Estate(a=a, b=b, ghost=_ghost(), keys_of_a=keys)


def _send(api: ApiClient, key: str, probe: Probe) -> Any:
    return api.call(
        probe.method,
        probe.path,
        key,
        json=probe.json,
        query_string=probe.query,
        headers=probe.headers,
    )


def _normalised(text: str, target: Target) -> str:
    """The body with the target's identifiers replaced by their names, and no request id."""
    for name, value in sorted(target.identifiers().items(), key=lambda kv: -len(kv[1])):
        text = text.replace(value, f"<{name}>")
    return without_request_id(text)


def test_the_matrix_has_a_case_for_every_route_of_the_contract() -> None:
    assert set(probes(_ghost())) == contract_operations()


def test_the_contract_declares_every_v1_route_the_app_serves(app: Flask) -> None:
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/"):
            template = rule.rule.replace("<", "{").replace(">", "}")
            served |= {(m.lower(), template) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == contract_operations()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    "operation", sorted(contract_operations()), ids=lambda op: f"{op[0].upper()} {op[1]}"
)
def test_a_key_bound_to_another_tenant_learns_nothing_and_changes_nothing(
    api: ApiClient, database: Database, estate: Estate, operation: tuple[str, str], role: str
) -> None:
    key = estate.keys_of_a[role]
    table = probes(estate.b)
    assert table.get(operation), f"add cross-tenant probes for {operation} to probes()"
    at_b, at_ghost = table[operation], probes(estate.ghost)[operation]
    for probe, twin in zip(at_b, at_ghost, strict=True):
        before = Fingerprint.of(database)
        response = _send(api, key, probe)
        expected = probe.expect[role]
        assert response.status_code == expected, (probe, response.get_data(as_text=True))
        assert Fingerprint.of(database) == before, f"{probe} changed the database"

        # Nothing of B that the caller did not send itself appears in the answer.
        unsent = [v for v in estate.b.identifiers().values() if v.lower() not in probe.sent_text()]
        assert mentions(response, unsent) == []
        if expected == 200 and probe.own_only is not None:
            probe.own_only(response.get_json(), estate)

        # ... and the answer is the one a missing object gets.
        ghost_response = _send(api, key, twin)
        assert ghost_response.status_code == response.status_code
        assert _normalised(ghost_response.get_data(as_text=True), estate.ghost) == _normalised(
            response.get_data(as_text=True), estate.b
        )


# -- through Azure: the host identity and tokens of another Entra tenant --------------------------
def _azure_probes(a: str, ws: str, b_box: Any) -> list[tuple[str, str, str, dict[str, Any] | None]]:
    """Every route of A's own objects that reaches Azure: (role needed, method, path, body)."""
    base = f"/v1/tenants/{a}/workspaces/{ws}"
    probes: list[tuple[str, str, str, dict[str, Any] | None]] = [
        ("admin", "POST", f"/v1/tenants/{a}/credential/verify", None),
        (
            "admin",
            "POST",
            f"/v1/tenants/{a}/workspaces",
            {
                "slug": unique("w"),
                "subscription_id": b_box.subscription_id,
                "resource_group": b_box.resource_group,
                "workspace_name": b_box.workspace_name,
            },
        ),
        ("operator", "POST", f"{base}/sync", None),
        ("reader", "GET", f"{base}/endpoints/ep-0/container-logs?tail=5", None),
        ("reader", "POST", f"{base}/logs/query", {"query": "AppRequests | take 1"}),
        *[
            ("reader", "GET", f"{base}/endpoints/ep-0/telemetry/{v}", None)
            for v in ("requests", "dependencies", "exceptions", "traces")
        ],
    ]
    return probes


@pytest.mark.parametrize("case", ["host_identity", "wrong_tenant_token"])
def test_no_key_of_a_reaches_bs_azure_through_as_own_credential(
    api: ApiClient,
    world: World,
    database: Database,
    runtime: Any,
    emulator: Any,
    admin_key: str,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    """A's keys, every role, on A's own objects, while the service's identity reaches B."""
    b_box, a_box = emulator.sandbox(prefix="victim"), emulator.sandbox(prefix="caller")
    b_box.add_service("ep-0", compute_type="AKS", app_insights_enabled=True)
    monkeypatch.setenv("AZURE_TENANT_ID", b_box.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", b_box.client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", b_box.client_secret)
    a = world.tenant(entra_tenant_id=a_box.tenant_id)
    keys = {role: world.key(role, a) for role in ROLES}
    leaks: list[str] = []
    mark = emulator.bookmark()
    if case == "host_identity":
        # Nobody but a global admin chooses it, and only for a tenant the operator named.
        for who, key in [*keys.items(), ("global admin", admin_key)]:
            before = Fingerprint.of(database)
            r = api.put(f"/v1/tenants/{a}/credential", key, json={"kind": "host_identity"})
            if r.status_code != 403 or Fingerprint.of(database) != before:
                leaks.append(f"{who}: PUT host_identity -> {r.status_code}")
    else:
        # Misconfigured: A is named and a global admin set it; its tokens are B's.
        allowed = runtime.settings.with_overrides(host_identity_tenants=frozenset({a}))
        monkeypatch.setattr(runtime, "settings", allowed)
        r = api.put(f"/v1/tenants/{a}/credential", admin_key, json={"kind": "host_identity"})
        assert r.status_code == 201
        ws = world.workspace(
            a,
            subscription_id=b_box.subscription_id,
            resource_group=b_box.resource_group,
            workspace_name=b_box.workspace_name,
            log_analytics_workspace_id=b_box.log_analytics_workspace_id,
            app_insights_resource_id=b_box.app_insights_resource_id,
        )
        world.endpoints(a, ws, ["ep-0"])
        rank = {r: i for i, r in enumerate(ROLES)}
        for role, key in keys.items():
            for needed, method, path, body in _azure_probes(a, ws, b_box):
                path, _, query = path.partition("?")
                r = api.call(
                    method,
                    path,
                    key,
                    json=body,
                    query_string=dict([query.split("=")]) if query else {},
                )
                expected = 424 if rank[role] >= rank[needed] else 403
                if r.status_code != expected or (
                    expected == 424 and r.get_json()["code"] != "wrong_tenant_token"
                ):
                    leaks.append(f"{role}: {method} {path} -> {r.status_code}")
    # Nothing reached B: no request on its subscription or its logs, none with its tokens.
    for e in emulator.requests(since=mark):
        if e.route.startswith("entra."):
            continue
        if e.subscription_id == b_box.subscription_id or e.tenant_id == b_box.tenant_id:
            leaks.append(f"emulator saw {e.method} {e.path}")
        if b_box.log_analytics_workspace_id and b_box.log_analytics_workspace_id in e.path:
            leaks.append(f"emulator saw {e.method} {e.path}")
    assert leaks == [], f"{len(leaks)} leaks"
