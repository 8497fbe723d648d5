"""The role matrix: every route x every kind of key (reader, operator, admin; global or bound to
the tenant it acts on), each answering the status the rules give, and a refusal changes nothing.

reader < operator < admin. Reads need reader; tenant update, workspace writes, credentials and API
keys need admin; creating or deleting a tenant needs a *global* admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from emulator.testing import EmulatorHandle
from service.db.session import Database
from tests.api.helpers import (
    Fingerprint,
    assert_problem,
    audit_count,
    audit_events,
    contract_operations,
    key_id_of,
)
from tests.support.api import ApiClient, World, new_guid, unique
from tests.support.reconcile import add_operation, add_policy, add_retention_policy

WS = "/v1/tenants/{tenant}/workspaces/{workspace}"
STORAGE = (
    "/subscriptions/0f6c2a1e-1b2c-4d3e-8f4a-5b6c7d8e9f01/resourceGroups/rg/providers/"
    "Microsoft.Storage/storageAccounts/keepsa"
)
EP = WS + "/endpoints/{endpoint}"

KINDS = [
    ("reader", False),
    ("operator", False),
    ("admin", False),
    ("reader", True),
    ("operator", True),
    ("admin", True),
]

# operation -> (who may call it, status on success, audit action written on success)
RULES: dict[tuple[str, str], tuple[str, int, str | None]] = {
    ("get", "/v1/tenants"): ("reader", 200, None),
    ("post", "/v1/tenants"): ("global admin", 201, "tenant.create"),
    ("get", "/v1/tenants/{tenant}"): ("reader", 200, None),
    ("patch", "/v1/tenants/{tenant}"): ("admin", 200, "tenant.update"),
    ("delete", "/v1/tenants/{tenant}"): ("global admin", 204, "tenant.delete"),
    ("get", "/v1/tenants/{tenant}/workspaces"): ("reader", 200, None),
    ("post", "/v1/tenants/{tenant}/workspaces"): ("admin", 201, "workspace.create"),
    ("get", "/v1/tenants/{tenant}/workspaces/{workspace}"): ("reader", 200, None),
    ("patch", "/v1/tenants/{tenant}/workspaces/{workspace}"): ("admin", 200, "workspace.update"),
    ("delete", "/v1/tenants/{tenant}/workspaces/{workspace}"): ("admin", 204, "workspace.delete"),
    ("get", "/v1/tenants/{tenant}/workspaces/{workspace}/endpoints"): ("reader", 200, None),
    ("get", "/v1/tenants/{tenant}/workspaces/{workspace}/endpoints/{endpoint}"): (
        "reader",
        200,
        None,
    ),
    ("put", "/v1/tenants/{tenant}/credential"): ("admin", 201, "credential.put"),
    ("get", "/v1/tenants/{tenant}/credential"): ("admin", 200, None),
    ("delete", "/v1/tenants/{tenant}/credential"): ("admin", 204, "credential.delete"),
    # Nobody signed in yet: verification is refused by Azure's side (424) and still audited.
    ("post", "/v1/tenants/{tenant}/credential/verify"): ("admin", 424, "credential.verify"),
    ("post", "/v1/tenants/{tenant}/credential/device-logins"): (
        "admin",
        202,
        "credential.device_login.start",
    ),
    ("get", "/v1/tenants/{tenant}/credential/device-logins/{login_id}"): ("admin", 200, None),
    ("get", "/v1/api-keys"): ("admin", 200, None),
    ("post", "/v1/api-keys"): ("admin", 201, "api_key.create"),
    ("get", "/v1/api-keys/{key_id}"): ("admin", 200, None),
    ("delete", "/v1/api-keys/{key_id}"): ("admin", 204, "api_key.revoke"),
    ("get", "/v1/whoami"): ("reader", 200, None),
    ("get", "/v1/audit-events"): ("reader", 200, None),
    # Monitoring (issue 5). No credential in these scenes: Azure calls answer 409.
    ("get", "/v1/tenants/{tenant}/policy"): ("reader", 200, None),
    ("put", "/v1/tenants/{tenant}/policy"): ("operator", 202, "policy.put"),
    ("delete", "/v1/tenants/{tenant}/policy"): ("operator", 202, "policy.delete"),
    ("get", WS + "/policy"): ("reader", 200, None),
    ("put", WS + "/policy"): ("operator", 202, "policy.put"),
    ("delete", WS + "/policy"): ("operator", 202, "policy.delete"),
    ("get", EP + "/policy"): ("reader", 200, None),
    ("put", EP + "/policy"): ("operator", 202, "policy.put"),
    ("delete", EP + "/policy"): ("operator", 202, "policy.delete"),
    ("post", WS + "/sync"): ("operator", 409, None),
    ("post", EP + "/apply"): ("operator", 202, "operation.apply"),
    ("post", WS + "/apply"): ("operator", 202, "operation.apply"),
    ("post", "/v1/tenants/{tenant}/apply"): ("operator", 202, "operation.apply"),
    ("get", "/v1/tenants/{tenant}/compliance"): ("reader", 200, None),
    # Retention (issue 13). No credential in these scenes: discovery answers 409.
    ("get", "/v1/tenants/{tenant}/retention-policy"): ("reader", 200, None),
    ("put", "/v1/tenants/{tenant}/retention-policy"): ("operator", 202, "retention_policy.put"),
    ("delete", "/v1/tenants/{tenant}/retention-policy"): (
        "operator",
        202,
        "retention_policy.delete",
    ),
    ("get", WS + "/retention-policy"): ("reader", 200, None),
    ("put", WS + "/retention-policy"): ("operator", 202, "retention_policy.put"),
    ("delete", WS + "/retention-policy"): ("operator", 202, "retention_policy.delete"),
    ("get", "/v1/tenants/{tenant}/retention"): ("reader", 200, None),
    ("post", WS + "/retention/sync"): ("operator", 409, None),
    ("post", "/v1/tenants/{tenant}/retention/apply"): ("operator", 202, "retention.apply"),
    ("get", EP + "/container-logs"): ("reader", 409, None),
    ("get", "/v1/operations"): ("reader", 200, None),
    ("get", "/v1/operations/{operation_id}"): ("reader", 200, None),
    ("post", "/v1/operations/{operation_id}/cancel"): ("operator", 200, "operation.cancel"),
    # Log queries: the scene's workspace registers no Log Analytics workspace or App Insights
    # resource, so an allowed caller gets 409 before anything reaches Azure (nothing audited).
    ("post", "/v1/tenants/{tenant}/workspaces/{workspace}/logs/query"): ("reader", 409, None),
    **{
        (
            "get",
            f"/v1/tenants/{{tenant}}/workspaces/{{workspace}}/endpoints/{{endpoint}}/telemetry/{v}",
        ): (
            "reader",
            409,
            None,
        )
        for v in ("requests", "dependencies", "exceptions", "traces")
    },
}


LISTS = {
    "/v1/tenants",
    "/v1/tenants/{tenant}/workspaces",
    "/v1/tenants/{tenant}/workspaces/{workspace}/endpoints",
    "/v1/api-keys",
    "/v1/audit-events",
    "/v1/operations",
}


def allowed(who: str, role: str, bound: bool) -> bool:
    if who == "reader":
        return True
    if who == "admin":
        return role == "admin"
    if who == "operator":
        return role in ("operator", "admin")
    return role == "admin" and not bound  # global admin


@dataclass
class Scene:
    tenant: str
    workspace: str | None
    endpoint: str | None
    key_id: str  # a reader key of the tenant, target of the key routes
    login_id: str = ""
    operation_id: str = ""
    subscription: str = ""  # one the tenant's credential reaches (workspace registration)


def _scene(
    world: World, database: Database, template: str, method: str, emulator: EmulatorHandle
) -> Scene:
    """A fresh tenant holding just what the route needs (deleting a tenant needs it empty)."""
    login_id = subscription = ""
    if template.endswith("/device-logins") and method == "post":
        # A real sign-in start: the tenant and its public client exist in the emulator.
        box = emulator.sandbox()
        client = emulator.state.add_public_client(box.tenant_id)
        tenant = world.tenant(entra_tenant_id=box.tenant_id)
        world.delegated_credential(tenant, client.client_id)
    elif template.endswith("/workspaces") and method == "post":
        # Registration asks Resource Manager, with the tenant's credential, for the subscription.
        box = emulator.sandbox()
        tenant = world.azure_tenant(box)
        subscription = box.subscription_id
    else:
        tenant = world.tenant()
        if "/credential" in template and not (method == "put" and template.endswith("credential")):
            login_id = world.delegated_credential(tenant)
    workspace = endpoint = None
    if "{workspace}" in template:
        workspace = world.workspace(tenant)
    if "{endpoint}" in template:
        endpoint = unique("ep")
        world.endpoints(tenant, workspace or "", [endpoint])
    key_id = key_id_of(database, world.key("reader", tenant)) if "{key_id}" in template else ""
    if template.endswith("/retention-policy") and method in ("get", "delete"):
        add_retention_policy(world.rt, tenant, workspace)
    elif template.endswith("/policy") and method in ("get", "delete"):
        add_policy(world.rt, tenant, workspace, endpoint)
    operation_id = ""
    if "{operation_id}" in template:
        workspace = workspace or world.workspace(tenant)
        operation_id = add_operation(database, tenant, workspace, unique("ep"))
    return Scene(tenant, workspace, endpoint, key_id, login_id, operation_id, subscription)


def _request(method: str, template: str, s: Scene) -> dict[str, Any]:
    path = (
        template.replace("{tenant}", s.tenant)
        .replace("{workspace}", s.workspace or "")
        .replace("{endpoint}", s.endpoint or "")
        .replace("{key_id}", s.key_id)
        .replace("{login_id}", s.login_id)
        .replace("{operation_id}", s.operation_id)
    )
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("post", "/v1/tenants"): {
            "slug": unique("t"),
            "display_name": "New",
            "entra_tenant_id": new_guid(),
        },
        ("patch", "/v1/tenants/{tenant}"): {"display_name": unique("renamed")},
        ("post", "/v1/tenants/{tenant}/workspaces"): {
            "slug": unique("w"),
            "subscription_id": s.subscription,
            "resource_group": "rg",
            "workspace_name": unique("mlw"),
        },
        ("patch", "/v1/tenants/{tenant}/workspaces/{workspace}"): {
            "display_name": unique("renamed")
        },
        ("post", "/v1/api-keys"): {"name": "k", "role": "reader", "tenant": s.tenant},
        # (host_identity is a global admin's choice for allow-listed tenants: test_trust.py)
        ("put", "/v1/tenants/{tenant}/credential"): {
            "kind": "service_principal",
            "client_id": new_guid(),
            "client_secret": "not-a-real-secret",
        },
        ("put", "/v1/tenants/{tenant}/policy"): {"app_insights": True},
        ("put", WS + "/policy"): {"mode": "audit"},
        ("put", EP + "/policy"): {"app_insights": False},
        ("put", "/v1/tenants/{tenant}/retention-policy"): {"destination_resource_id": STORAGE},
        ("put", WS + "/retention-policy"): {"tables": ["AppTraces"]},
        ("post", "/v1/tenants/{tenant}/workspaces/{workspace}/logs/query"): {
            "query": "AppRequests | take 1"
        },
    }
    # Lists are asked for a short page: the point is the status, not validating 50 items.
    query = {"limit": "3"} if method == "get" and template in LISTS else {}
    return {"path": path, "json": bodies.get((method, template)), "query": query}


def test_the_role_rules_cover_every_route_of_the_contract() -> None:
    assert set(RULES) == contract_operations()


@pytest.mark.parametrize(
    ("role", "bound"), KINDS, ids=[f"{'bound' if b else 'global'}-{r}" for r, b in KINDS]
)
@pytest.mark.parametrize(
    "operation", sorted(contract_operations()), ids=lambda op: f"{op[0].upper()} {op[1]}"
)
def test_each_kind_of_key_gets_the_status_its_role_allows(
    api: ApiClient,
    world: World,
    database: Database,
    emulator: EmulatorHandle,
    operation: tuple[str, str],
    role: str,
    bound: bool,
) -> None:
    method, template = operation
    assert operation in RULES, f"add {method.upper()} {template} to RULES (and its request)"
    who, success, action = RULES[operation]
    scene = _scene(world, database, template, method, emulator)
    key = world.key(role, scene.tenant if bound else None)
    request = _request(method, template, scene)
    before = Fingerprint.of(database)
    events_before = audit_count(database)

    response = api.call(
        method.upper(), request["path"], key, json=request["json"], query_string=request["query"]
    )

    if allowed(who, role, bound):
        assert response.status_code == success, response.get_data(as_text=True)
        if action is None:
            assert Fingerprint.of(database) == before
        else:
            assert audit_count(database) == events_before + 1
            (event,) = audit_events(database, action=action, actor_key_id=key_id_of(database, key))
            assert event.actor_key_id == key_id_of(database, key)
    else:
        assert_problem(response, 403, "forbidden")
        assert Fingerprint.of(database) == before
