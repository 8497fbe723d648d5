"""What Entra ID's endpoints share: tenant resolution, common errors, issuing tokens.

Tokens are signed by the state's `emulator.tokens.TokenSigner` with the tenant's issuer and the
lifetimes of `EntraSettings`.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from emulator.server import RequestContext, entra_error, json_response
from emulator.state import EmulatorState, User
from emulator.tokens import issuer

RESERVED_SCOPES = {"openid", "profile", "offline_access", "email"}
_GRAPH = "https://graph.microsoft.com"


def resource_of(scopes: list[str]) -> str:
    """The token audience for requested scopes ("https://x/.default" -> "https://x")."""
    for scope in scopes:
        if scope in RESERVED_SCOPES:
            continue
        if "://" in scope:
            head, _, tail = scope.partition("://")
            return f"{head}://{tail.rsplit('/', 1)[0]}".rstrip("/") if "/" in tail else scope
        return _GRAPH
    return _GRAPH


def resolve_tenant(ctx: RequestContext, client_id: str | None = None) -> str | None:
    """A tenant id from the path segment: a GUID, a tenant name, or common/organizations."""
    segment = ctx.params["tenant"]
    state = ctx.state
    with state.lock:
        if segment in state.tenants:
            return segment
        for tenant in state.tenants.values():
            if tenant.name.lower() == segment.lower():
                return tenant.id
        if segment.lower() in ("common", "organizations") and client_id:
            for tid, cid in (*state.public_clients, *state.confidential_clients):
                if cid == client_id:
                    return tid
    return None


def unknown_tenant(ctx: RequestContext) -> Response:
    segment = ctx.params["tenant"]
    return entra_error(
        400,
        "invalid_request",
        90002,
        f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud.",
    )


def unknown_application(tenant_id: str, client_id: str) -> Response:
    return entra_error(
        400,
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory "
        f"'{tenant_id}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may have sent "
        "your authentication request to the wrong tenant.",
    )


def token_response(body: dict[str, Any]) -> Response:
    body.setdefault("ext_expires_in", body["expires_in"])
    return json_response(
        body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
    )


def access_token(
    state: EmulatorState,
    tenant_id: str,
    *,
    object_id: str,
    client_id: str,
    audience: str,
    user: User | None = None,
    scopes: list[str] | None = None,
) -> tuple[str, int]:
    """Sign an access token with the tenant's issuer; returns (jwt, expires_in)."""
    lifetime = state.entra.access_token_lifetime_s
    token = state.signer.access_token(
        issuer(state.base_url, tenant_id),
        tenant_id,
        object_id=object_id,
        client_id=client_id,
        audience=audience,
        lifetime_s=lifetime,
        user=user,
        scopes=scopes,
    )
    return token, lifetime


def id_token(state: EmulatorState, tenant_id: str, client_id: str, user: User) -> str:
    """Sign an id token for a signed-in user with the tenant's issuer."""
    return state.signer.id_token(
        issuer(state.base_url, tenant_id),
        tenant_id,
        client_id,
        user,
        state.entra.access_token_lifetime_s,
    )
