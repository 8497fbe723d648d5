"""Entra ID (Azure AD) v2.0 endpoints: OIDC discovery, JWKS and the token endpoint.

Grants: client_credentials (client secret, or an RS256/PS256 client assertion verified against the
registered certificate), device_code and refresh_token (those two, the device code endpoint and
the device login page are in `emulator.entra_delegated`). Errors use Entra's body shape and AADSTS
codes, e.g. a wrong secret is 401 invalid_client AADSTS7000215.
"""

from __future__ import annotations

import secrets

import jwt
from cryptography import x509
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from emulator.entra_common import (
    access_token,
    resolve_tenant,
    resource_of,
    token_response,
    unknown_application,
    unknown_tenant,
)
from emulator.entra_delegated import device_code_grant, refresh_grant
from emulator.server import RequestContext, Route, entra_error, json_response
from emulator.state import ServicePrincipal
from emulator.tokens import issuer

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _openid_configuration(ctx: RequestContext) -> Response:
    tenant_id = resolve_tenant(ctx)
    segment = ctx.params["tenant"]
    if tenant_id is None and segment.lower() not in ("common", "organizations"):
        return unknown_tenant(ctx)
    base = f"{ctx.base_url}/{segment}"
    issuer_url = (
        issuer(ctx.base_url, tenant_id) if tenant_id else f"{ctx.base_url}/{{tenantid}}/v2.0"
    )
    return json_response(
        {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer_url,
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "nonce",
                "preferred_username",
                "name",
                "tid",
            ],
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
        },
        headers={"Cache-Control": "max-age=86400, private"},
    )


def _keys(ctx: RequestContext) -> Response:
    return json_response(ctx.state.signer.jwks())


def _token(ctx: RequestContext) -> Response:
    form = ctx.request.form
    client_id = form.get("client_id")
    basic = ctx.request.authorization
    if basic is not None and basic.type == "basic":
        client_id = client_id or basic.username
    tenant_id = resolve_tenant(ctx, client_id)
    if tenant_id is None:
        return unknown_tenant(ctx)
    if not client_id:
        return entra_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    grant = form.get("grant_type")
    if grant == "client_credentials":
        return _client_credentials(ctx, tenant_id, client_id, form)
    if grant == DEVICE_CODE_GRANT:
        return device_code_grant(ctx, client_id, form.get("device_code", ""))
    if grant == "refresh_token":
        return refresh_grant(ctx, tenant_id, client_id, form)
    return entra_error(
        400,
        "unsupported_grant_type",
        70003,
        f"The app requested an unsupported grant type '{grant}'.",
    )


def _client_credentials(
    ctx: RequestContext, tenant_id: str, client_id: str, form: MultiDict[str, str]
) -> Response:
    state = ctx.state
    with state.lock:
        sp = state.confidential_clients.get((tenant_id, client_id))
    if sp is None:
        return unknown_application(tenant_id, client_id)
    scopes = form.get("scope", "").split()
    if not scopes or not all(s.endswith("/.default") for s in scopes):
        return entra_error(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {' '.join(scopes)} is not valid. Client credential "
            "flows must have a scope value with /.default suffixed to the resource identifier "
            "(application ID URI).",
        )
    secret = form.get("client_secret")
    basic = ctx.request.authorization
    if secret is None and basic is not None and basic.type == "basic":
        secret = basic.password
    if secret is not None:
        if not any(secrets.compare_digest(secret, known) for known in sp.secrets):
            return entra_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
            )
    elif form.get("client_assertion_type") == ASSERTION_TYPE and form.get("client_assertion"):
        problem = _verify_assertion(ctx, sp, form["client_assertion"])
        if problem is not None:
            return problem
    else:
        return entra_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
        )
    token, expires_in = access_token(
        state, tenant_id, object_id=sp.object_id, client_id=client_id, audience=resource_of(scopes)
    )
    return token_response({"token_type": "Bearer", "expires_in": expires_in, "access_token": token})


def _verify_assertion(ctx: RequestContext, sp: ServicePrincipal, assertion: str) -> Response | None:
    """Check an RS256/PS256 client assertion: key by x5t, signature, aud, iss = sub, lifetime."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        return entra_error(401, "invalid_client", 50027, "JWT token is invalid or malformed.")
    thumbprint = header.get("x5t#S256") or header.get("x5t") or ""
    # msal keeps base64 padding on x5t; RFC 7515 base64url has none. Accept both.
    pem = sp.certificates.get(thumbprint.rstrip("="))
    if pem is None:
        return entra_error(
            401,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. [Reason - The key was not found., "
            f"Thumbprint of key used by client: '{thumbprint}']",
        )
    public_key = x509.load_pem_x509_certificate(pem).public_key()
    token_url = f"{ctx.base_url}{ctx.request.path}"
    try:
        claims = jwt.decode(
            assertion,
            public_key,  # type: ignore[arg-type]
            algorithms=["RS256", "PS256"],
            audience=token_url,
            options={"require": ["exp", "aud", "iss", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        return entra_error(
            401, "invalid_client", 700024, "Client assertion is not within its valid time range."
        )
    except jwt.InvalidAudienceError:
        return entra_error(
            401, "invalid_client", 700027, f"Client assertion audience must be '{token_url}'."
        )
    except jwt.PyJWTError:
        return entra_error(
            401, "invalid_client", 700027, "Client assertion failed signature validation."
        )
    if claims["iss"] != sp.client_id or claims["sub"] != sp.client_id:
        return entra_error(
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        )
    return None


ROUTES = [
    Route(
        "entra.openid_configuration",
        "/<tenant>/v2.0/.well-known/openid-configuration",
        ("GET",),
        _openid_configuration,
    ),
    Route("entra.keys", "/<tenant>/discovery/v2.0/keys", ("GET",), _keys),
    Route("entra.token", "/<tenant>/oauth2/v2.0/token", ("POST",), _token),
]
