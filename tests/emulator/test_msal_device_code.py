"""msal device-code flow, a serialized cache used from a second process, refresh and revocation."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import jwt
import msal
import pytest

from emulator.testing import EmulatorHandle, unique_name

SCOPES = ["https://api.loganalytics.io/.default"]


def _delegated_setup(emulator: EmulatorHandle) -> tuple[str, str, str]:
    tenant = emulator.state.add_tenant(name=unique_name("delegated"))
    app = emulator.state.add_public_client(tenant.id)
    user = emulator.state.add_user(tenant.id, f"{unique_name('user')}@contoso.example")
    return tenant.id, app.client_id, user.username


def _app(
    emulator: EmulatorHandle, tenant_id: str, client_id: str, cache: msal.TokenCache
) -> msal.PublicClientApplication:
    return msal.PublicClientApplication(
        client_id,
        authority=f"{emulator.authority}/{tenant_id}",
        token_cache=cache,
        instance_discovery=False,
    )


def _signed_in(
    emulator: EmulatorHandle,
) -> tuple[msal.PublicClientApplication, msal.SerializableTokenCache, str, str, str]:
    tenant_id, client_id, username = _delegated_setup(emulator)
    cache = msal.SerializableTokenCache()
    app = _app(emulator, tenant_id, client_id, cache)
    flow = app.initiate_device_flow(scopes=SCOPES)
    emulator.approve_device_code(flow["user_code"], username)
    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
    assert "access_token" in result, result
    return app, cache, tenant_id, client_id, username


def test_device_flow_is_pending_until_a_user_approves(emulator: EmulatorHandle) -> None:
    tenant_id, client_id, username = _delegated_setup(emulator)
    app = _app(emulator, tenant_id, client_id, msal.SerializableTokenCache())
    flow = app.initiate_device_flow(scopes=SCOPES)
    assert flow["verification_uri"] == f"{emulator.url}/devicelogin"
    assert flow["user_code"] in flow["message"]

    pending = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
    assert pending["error"] == "authorization_pending"

    emulator.approve_device_code(flow["user_code"], username)
    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
    assert result["id_token_claims"]["preferred_username"] == username
    assert {"access_token", "refresh_token", "id_token", "client_info"} <= result.keys()
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert (claims["aud"], claims["tid"], claims["upn"]) == (
        "https://api.loganalytics.io",
        tenant_id,
        username,
    )


def test_expired_device_code_answers_expired_token(emulator: EmulatorHandle) -> None:
    tenant_id, client_id, _ = _delegated_setup(emulator)
    app = _app(emulator, tenant_id, client_id, msal.SerializableTokenCache())
    flow = app.initiate_device_flow(scopes=SCOPES)
    emulator.state.device_codes[flow["device_code"]].expires_at = time.time() - 1
    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
    assert result["error"] == "expired_token"


_SECOND_PROCESS = textwrap.dedent(
    """
    import json, sys
    import msal

    cache_path, authority, client_id, scope = sys.argv[1:5]
    cache = msal.SerializableTokenCache()
    cache.deserialize(open(cache_path).read())
    app = msal.PublicClientApplication(
        client_id, authority=authority, token_cache=cache, instance_discovery=False
    )
    account = app.get_accounts()[0]
    silent = app.acquire_token_silent([scope], account=account)
    refreshed = app.acquire_token_silent_with_error([scope], account=account, force_refresh=True)
    if cache.has_state_changed:
        open(cache_path, "w").write(cache.serialize())
    print(json.dumps({
        "username": account["username"],
        "silent": silent["access_token"] if silent else None,
        "refreshed": refreshed.get("access_token"),
        "error": refreshed.get("error"),
    }))
    """
)


def _second_process(
    emulator: EmulatorHandle, cache_path: Path, tenant_id: str, client_id: str
) -> dict[str, Any]:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            _SECOND_PROCESS,
            str(cache_path),
            f"{emulator.authority}/{tenant_id}",
            client_id,
            SCOPES[0],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout)


def test_serialized_cache_serves_silent_and_refresh_in_another_process(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    app, cache, tenant_id, client_id, username = _signed_in(emulator)
    cache_path = tmp_path / "cache.json"
    cache_path.write_text(cache.serialize())
    since = emulator.bookmark()

    out = _second_process(emulator, cache_path, tenant_id, client_id)

    assert out["username"] == username
    assert (
        out["silent"]
        == app.acquire_token_silent(SCOPES, account=app.get_accounts()[0])["access_token"]
    )
    assert out["refreshed"]
    assert out["refreshed"] != out["silent"]
    token_calls = emulator.requests("entra.token", since=since, tenant_id=tenant_id)
    assert len(token_calls) == 1, "only the forced refresh reaches the token endpoint"
    assert json.loads(cache_path.read_text())["RefreshToken"], (
        "the rotated refresh token was written back"
    )


def test_revoked_refresh_token_is_invalid_grant(emulator: EmulatorHandle) -> None:
    app, _, _, _, username = _signed_in(emulator)
    assert emulator.state.revoke_refresh_tokens(username=username) == 1
    result = app.acquire_token_silent_with_error(
        SCOPES, account=app.get_accounts()[0], force_refresh=True
    )
    assert result["error"] == "invalid_grant"
    assert 50173 in result["error_codes"]


@pytest.mark.parametrize("strict", [False, True])
def test_refresh_token_rotation_policy(fresh_emulator: EmulatorHandle, strict: bool) -> None:
    fresh_emulator.set_limits(entra={"strict_refresh_token_rotation": strict})
    app, cache, _, _, _ = _signed_in(fresh_emulator)
    old = json.loads(cache.serialize())["RefreshToken"]
    account = app.get_accounts()[0]
    assert "access_token" in app.acquire_token_silent_with_error(
        SCOPES, account=account, force_refresh=True
    )
    old_secret = next(iter(old.values()))["secret"]
    record = fresh_emulator.state.refresh_tokens[old_secret]
    assert record.revoked is strict
