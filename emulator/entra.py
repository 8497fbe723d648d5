"""Entra ID (Azure AD) v2.0 endpoints: OIDC discovery, JWKS, token, device code, device login page.

Grants: client_credentials (client secret, or an RS256/PS256 client assertion verified against the
registered certificate), device_code and refresh_token. Errors use Entra's body shape and AADSTS
codes, e.g. a wrong secret is 401 invalid_client AADSTS7000215.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import time
from typing import Any

import jwt
from cryptography import x509
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from emulator.server import RequestContext, Route, entra_error, json_response
from emulator.state import DeviceCode, ServicePrincipal, User

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_RESERVED_SCOPES = {"openid", "profile", "offline_access", "email"}
_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_GRAPH = "https://graph.microsoft.com"


def resource_of(scopes: list[str]) -> str:
    """The token audience for requested scopes ("https://x/.default" -> "https://x")."""
    for scope in scopes:
        if scope in _RESERVED_SCOPES:
            continue
        if "://" in scope:
            head, _, tail = scope.partition("://")
            return f"{head}://{tail.rsplit('/', 1)[0]}".rstrip("/") if "/" in tail else scope
        return _GRAPH
    return _GRAPH


def _resolve_tenant(ctx: RequestContext, client_id: str | None = None) -> str | None:
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


def _unknown_tenant(ctx: RequestContext) -> Response:
    segment = ctx.params["tenant"]
    return entra_error(
        400,
        "invalid_request",
        90002,
        f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud.",
    )


def _openid_configuration(ctx: RequestContext) -> Response:
    tenant_id = _resolve_tenant(ctx)
    segment = ctx.params["tenant"]
    if tenant_id is None and segment.lower() not in ("common", "organizations"):
        return _unknown_tenant(ctx)
    base = f"{ctx.base_url}/{segment}"
    issuer = ctx.state.issuer(tenant_id) if tenant_id else f"{ctx.base_url}/{{tenantid}}/v2.0"
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
            "issuer": issuer,
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
    tenant_id = _resolve_tenant(ctx, client_id)
    if tenant_id is None:
        return _unknown_tenant(ctx)
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
        return _device_code_grant(ctx, client_id, form.get("device_code", ""))
    if grant == "refresh_token":
        return _refresh_grant(ctx, tenant_id, client_id, form)
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
        return _unknown_application(tenant_id, client_id)
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
    token, expires_in = state.issue_access_token(
        tenant_id, object_id=sp.object_id, client_id=client_id, audience=resource_of(scopes)
    )
    return _token_response(
        {"token_type": "Bearer", "expires_in": expires_in, "access_token": token}
    )


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


def _unknown_application(tenant_id: str, client_id: str) -> Response:
    return entra_error(
        400,
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory "
        f"'{tenant_id}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may have sent "
        "your authentication request to the wrong tenant.",
    )


def _devicecode(ctx: RequestContext) -> Response:
    client_id = ctx.request.form.get("client_id", "")
    tenant_id = _resolve_tenant(ctx, client_id)
    if tenant_id is None:
        return _unknown_tenant(ctx)
    state = ctx.state
    with state.lock:
        known = (tenant_id, client_id) in state.public_clients
    if not known:
        return _unknown_application(tenant_id, client_id)
    user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))
    code = DeviceCode(
        device_code="DAQABAAEAAA" + secrets.token_urlsafe(48),
        user_code=user_code,
        tenant_id=tenant_id,
        client_id=client_id,
        scopes=ctx.request.form.get("scope", "").split(),
        expires_at=time.time() + state.entra.device_code_lifetime_s,
    )
    with state.lock:
        state.device_codes[code.device_code] = code
    uri = f"{ctx.base_url}/devicelogin"
    return json_response(
        {
            "user_code": user_code,
            "device_code": code.device_code,
            "verification_uri": uri,
            "expires_in": state.entra.device_code_lifetime_s,
            "interval": state.entra.device_code_interval_s,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the code "
            f"{user_code} to authenticate.",
        }
    )


def _device_code_grant(ctx: RequestContext, client_id: str, device_code: str) -> Response:
    state = ctx.state
    with state.lock:
        code = state.device_codes.get(device_code)
        if code is None or code.client_id != client_id:
            return entra_error(
                400, "invalid_grant", 70000, "Provided grant is invalid or malformed."
            )
        if code.redeemed:
            return entra_error(
                400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed."
            )
        if code.expires_at < time.time():
            return entra_error(400, "expired_token", 70019, "Verification code expired.")
        if code.user is None:
            return entra_error(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        code.redeemed = True
    return _user_tokens(ctx, code.tenant_id, client_id, code.user, code.scopes)


def _refresh_grant(
    ctx: RequestContext, tenant_id: str, client_id: str, form: MultiDict[str, str]
) -> Response:
    state = ctx.state
    with state.lock:
        record = state.refresh_tokens.get(form.get("refresh_token", ""))
        if record is None or record.client_id != client_id or record.tenant_id != tenant_id:
            return entra_error(
                400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
            )
        if record.revoked:
            return entra_error(
                400,
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is "
                "needed. The user might have changed or reset their password.",
            )
        if record.expires_at < time.time():
            return entra_error(
                400, "invalid_grant", 700082, "The refresh token has expired due to inactivity."
            )
        if state.entra.strict_refresh_token_rotation:
            record.revoked = True
    scopes = form.get("scope", "").split() or record.scopes
    return _user_tokens(ctx, tenant_id, client_id, record.user, scopes)


def _user_tokens(
    ctx: RequestContext, tenant_id: str, client_id: str, user: User, scopes: list[str]
) -> Response:
    state = ctx.state
    access, expires_in = state.issue_access_token(
        tenant_id,
        object_id=user.object_id,
        client_id=client_id,
        audience=resource_of(scopes),
        user=user,
        scopes=[s for s in scopes if s not in _RESERVED_SCOPES],
    )
    client_info = json.dumps({"uid": user.object_id, "utid": tenant_id}).encode()
    return _token_response(
        {
            "token_type": "Bearer",
            "scope": " ".join(scopes),
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": access,
            "refresh_token": state.issue_refresh_token(tenant_id, client_id, user, scopes),
            "id_token": state.issue_id_token(tenant_id, client_id, user),
            "client_info": base64.urlsafe_b64encode(client_info).rstrip(b"=").decode(),
        }
    )


def _token_response(body: dict[str, Any]) -> Response:
    body.setdefault("ext_expires_in", body["expires_in"])
    return json_response(
        body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
    )


_PAGE = """<!doctype html><html><head><title>Emulator device login</title></head><body>
<h1>Azure emulator: device sign-in</h1><p>{message}</p>
<form method="post"><label>Code <input name="user_code" value="{code}"></label>
<label>User <input name="username" placeholder="alice@contoso.example"></label>
<button type="submit">Sign in</button></form>
<h2>Pending codes</h2><ul>{pending}</ul></body></html>"""


def _devicelogin(ctx: RequestContext) -> Response:
    """A minimal verification page: pick a pending code and a user, press Sign in."""
    message, status = "Enter the code shown by the application and a user name.", 200
    if ctx.request.method == "POST":
        user_code = ctx.request.form.get("user_code", "").strip()
        try:
            ctx.state.approve_device_code(user_code, ctx.request.form.get("username", "").strip())
            message = f"Code {user_code} approved. You can close this window."
        except KeyError as exc:
            message, status = f"Sign-in failed: {exc.args[0]}", 400
    pending = "".join(
        f"<li>{html.escape(c.user_code)} (client {html.escape(c.client_id)})</li>"
        for c in ctx.state.pending_device_codes()
    )
    page = _PAGE.format(
        message=html.escape(message),
        code=html.escape(ctx.request.args.get("code", "")),
        pending=pending,
    )
    return Response(page, status=status, content_type="text/html; charset=utf-8")


ROUTES = [
    Route(
        "entra.openid_configuration",
        "/<tenant>/v2.0/.well-known/openid-configuration",
        ("GET",),
        _openid_configuration,
    ),
    Route("entra.keys", "/<tenant>/discovery/v2.0/keys", ("GET",), _keys),
    Route("entra.token", "/<tenant>/oauth2/v2.0/token", ("POST",), _token),
    Route("entra.devicecode", "/<tenant>/oauth2/v2.0/devicecode", ("POST",), _devicecode),
    Route("entra.devicelogin", "/devicelogin", ("GET", "POST"), _devicelogin),
]
