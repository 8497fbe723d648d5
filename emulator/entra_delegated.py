"""Entra ID's delegated flows: device code (RFC 8628), refresh tokens, the device login page.

`emulator.entra`'s token endpoint hands the device_code and refresh_token grants to
`device_code_grant` and `refresh_grant`; a user approves a device code on `/devicelogin` (or a
test calls `EmulatorState.approve_device_code`).
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import time

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from emulator.entra_common import (
    RESERVED_SCOPES,
    access_token,
    id_token,
    resolve_tenant,
    resource_of,
    token_response,
    unknown_application,
    unknown_tenant,
)
from emulator.server import RequestContext, Route, entra_error, json_response
from emulator.state import DeviceCode, User

_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _devicecode(ctx: RequestContext) -> Response:
    client_id = ctx.request.form.get("client_id", "")
    tenant_id = resolve_tenant(ctx, client_id)
    if tenant_id is None:
        return unknown_tenant(ctx)
    state = ctx.state
    with state.lock:
        known = (tenant_id, client_id) in state.public_clients
    if not known:
        return unknown_application(tenant_id, client_id)
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


def device_code_grant(ctx: RequestContext, client_id: str, device_code: str) -> Response:
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


def refresh_grant(
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
    access, expires_in = access_token(
        state,
        tenant_id,
        object_id=user.object_id,
        client_id=client_id,
        audience=resource_of(scopes),
        user=user,
        scopes=[s for s in scopes if s not in RESERVED_SCOPES],
    )
    client_info = json.dumps({"uid": user.object_id, "utid": tenant_id}).encode()
    return token_response(
        {
            "token_type": "Bearer",
            "scope": " ".join(scopes),
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": access,
            "refresh_token": state.issue_refresh_token(tenant_id, client_id, user, scopes),
            "id_token": id_token(state, tenant_id, client_id, user),
            "client_info": base64.urlsafe_b64encode(client_info).rstrip(b"=").decode(),
        }
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
    Route("entra.devicecode", "/<tenant>/oauth2/v2.0/devicecode", ("POST",), _devicecode),
    Route("entra.devicelogin", "/devicelogin", ("GET", "POST"), _devicelogin),
]
