"""Tenant credentials end to end: real azure-identity, msal, azureml-core and azure-monitor-query
against the emulator, through the service's API and its identity adapter."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.monitor.query import LogsQueryClient, LogsQueryStatus
from flask import Flask
from sqlalchemy import select
from werkzeug.test import TestResponse

from emulator.telemetry import TelemetrySpec, generate
from emulator.testing import EmulatorHandle, Sandbox
from service.adapters.azureml_auth import token_credential_authentication
from service.bootstrap import build_runtime
from service.config import PROJECT_ROOT, Settings
from service.db.session import Database
from service.errors import LoginRequired
from service.logs import RedactingFilter
from service.services.azure_credentials import tenant_credential
from service.services.runtime import Runtime
from tests.support.api import ApiClient, World, new_guid
from tests.support.certs import self_signed_pem

_SMALL_TELEMETRY = {
    name: table
    for name, table in generate(
        TelemetrySpec(
            roles=("scorer",),
            start=datetime.now(UTC) - timedelta(hours=1),
            end=datetime.now(UTC),
            requests_per_hour=20,
        )
    ).items()
    if name.startswith("App")
}

# What the current test handed out or received, and what it answered and logged: reset before
# each test and scanned after it (`no_secret_leaks`), so every test checks itself, in any order.
SECRETS: set[str] = set()
RESPONSE_BODIES: list[str] = []
LOG = io.StringIO()
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.")


@pytest.fixture(scope="module", autouse=True)
def capture_all_logs(app: Flask) -> Iterator[None]:
    """Every log line at every level, through the service's redacting filter.

    After the app exists: building it configures logging at the settings' level (INFO), which
    would otherwise silently lift the capture above DEBUG (msal logs its token-cache events,
    device codes included, at DEBUG only).
    """
    handler = logging.StreamHandler(LOG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.fixture(autouse=True)
def at_debug(capture_all_logs: None) -> None:
    """Each test starts at DEBUG: a test that builds an app sets the settings' level again."""
    logging.getLogger().setLevel(logging.DEBUG)


def leaks(secrets: set[str], haystacks: dict[str, str]) -> list[str]:
    """Where a secret or a JWT shows in the haystacks (named responses, logs)."""
    found = []
    for where, text in haystacks.items():
        found += [f"a secret ({s[:4]}...) leaked into {where}" for s in secrets if s in text]
        if _JWT.search(text) or ("eyJ" in text and "[REDACTED-JWT]" not in text):
            found.append(f"a JWT leaked into {where}")
    return found


@pytest.fixture(autouse=True)
def no_secret_leaks(at_debug: None, emulator: EmulatorHandle) -> Iterator[None]:
    """No secret or token of this test appears in any response or log line it produced.

    Logs are captured at DEBUG (msal, azure-identity and urllib3 included). Device codes (msal
    logs its token-cache event with the device code as "code") and refresh tokens count as
    secrets: responses show a user code to the admin, never a device code.
    """
    SECRETS.clear()
    RESPONSE_BODIES.clear()
    LOG.seek(0)
    LOG.truncate()
    yield
    SECRETS.update(emulator.state.refresh_tokens)
    SECRETS.update(c.device_code for c in emulator.state.device_codes.values())
    SECRETS.discard("")
    haystacks = {"responses": "\n".join(RESPONSE_BODIES), "logs": LOG.getvalue()}
    assert leaks(SECRETS, haystacks) == []


def call(api: ApiClient, method: str, path: str, key: str, **kw: Any) -> TestResponse:
    """An API call whose response is kept for the final secret scan."""
    response = api.call(method, path, key, **kw)
    RESPONSE_BODIES.append(response.get_data(as_text=True))
    RESPONSE_BODIES.append(str(dict(response.headers)))
    return response


def put_secret_credential(
    client: ApiClient, key: str, slug: str, client_id: str, secret: str
) -> TestResponse:
    """Configure a service principal with a client secret for the tenant."""
    SECRETS.add(secret)
    return call(
        client,
        "PUT",
        f"/v1/tenants/{slug}/credential",
        key,
        json={"kind": "service_principal", "client_id": client_id, "client_secret": secret},
    )


def allow_host_identity(monkeypatch: pytest.MonkeyPatch, runtime: Runtime, *slugs: str) -> None:
    """Name the tenants in HOST_IDENTITY_TENANTS for this test (the runtime reads it per call)."""
    allowed = runtime.settings.host_identity_tenants | frozenset(slugs)
    monkeypatch.setattr(
        runtime, "settings", runtime.settings.with_overrides(host_identity_tenants=allowed)
    )


def tenant_for(world: World, box: Sandbox) -> str:
    return world.tenant(entra_tenant_id=box.tenant_id)


def tenant_id_of(runtime: Runtime, slug: str) -> str:
    from sqlalchemy import select

    from service.db.models import Tenant

    with runtime.uow() as uow:
        tid = uow.session.scalar(select(Tenant.id).where(Tenant.slug == slug))
    assert tid is not None
    return tid


def load_workspace(credential: Any, box: Sandbox, emulator: EmulatorHandle) -> Any:
    """azureml-core's Workspace, authenticated by the tenant's credential."""
    from azureml.core import Workspace

    auth = token_credential_authentication(credential, resource_manager_url=emulator.arm_endpoint)
    return Workspace(box.subscription_id, box.resource_group, box.workspace_name, auth=auth)


def assert_the_sdks_work(
    runtime: Runtime, slug: str, box: Sandbox, emulator: EmulatorHandle
) -> None:
    """The tenant's credential loads its AML Workspace (azureml-core) and runs a log query."""
    credential = tenant_credential(runtime, tenant_id_of(runtime, slug))
    assert load_workspace(credential, box, emulator).name == box.workspace_name
    assert query_logs(credential, box, emulator) == LogsQueryStatus.SUCCESS


def query_logs(credential: object, box: Sandbox, emulator: EmulatorHandle) -> LogsQueryStatus:
    assert box.log_analytics_workspace_id is not None
    emulator.state.telemetry.add_workspace(box.log_analytics_workspace_id, _SMALL_TELEMETRY)
    client = LogsQueryClient(
        credential,  # type: ignore[arg-type]
        endpoint=emulator.logs_endpoint,
        audience="https://api.loganalytics.io",
        connection_verify=str(emulator.ca_path),
    )
    assert box.log_analytics_workspace_id is not None
    result = client.query_workspace(
        box.log_analytics_workspace_id, "AppRequests | take 1", timespan=None
    )
    return result.status


def test_a_service_principal_with_a_secret_is_stored_encrypted_verified_and_used(
    api: ApiClient,
    world: World,
    admin_key: str,
    runtime: Runtime,
    sandbox: Sandbox,
    emulator: EmulatorHandle,
) -> None:
    slug = tenant_for(world, sandbox)
    SECRETS.add(sandbox.client_secret)
    r = put_secret_credential(api, admin_key, slug, sandbox.client_id, sandbox.client_secret)
    assert r.status_code == 201, r.json
    assert r.json["method"] == "secret"
    assert r.json["status"] == "unverified"
    from sqlalchemy import text

    with runtime.uow() as uow:
        stored = (
            uow.session.execute(text("SELECT secret_ciphertext FROM tenant_credentials"))
            .scalars()
            .all()
        )
    assert stored
    assert all(sandbox.client_secret not in (s or "") for s in stored)

    v = call(api, "POST", f"/v1/tenants/{slug}/credential/verify", admin_key)
    assert v.status_code == 200, v.json
    assert v.json["identity"]["app_id"] == sandbox.client_id
    assert v.json["identity"]["tenant_id"] == sandbox.tenant_id
    assert call(api, "GET", f"/v1/tenants/{slug}/credential", admin_key).json["status"] == "ok"

    assert_the_sdks_work(runtime, slug, sandbox, emulator)


def test_a_service_principal_with_a_certificate_signs_its_assertion(
    api: ApiClient,
    world: World,
    admin_key: str,
    runtime: Runtime,
    emulator: EmulatorHandle,
) -> None:
    box = emulator.sandbox()
    cert_pem, bundle = self_signed_pem()
    SECRETS.update(
        line
        for line in bundle.splitlines()
        if line and "-----" not in line and line not in cert_pem
    )
    sp = emulator.state.add_service_principal(box.tenant_id, certificate_pem=cert_pem)
    slug = tenant_for(world, box)
    r = call(
        api,
        "PUT",
        f"/v1/tenants/{slug}/credential",
        admin_key,
        json={
            "kind": "service_principal",
            "client_id": sp.client_id,
            "certificate_pem": bundle,
        },
    )
    assert r.status_code == 201, r.json
    assert r.json["method"] == "certificate"
    assert len(r.json["certificate_thumbprint"]) == 40
    v = call(api, "POST", f"/v1/tenants/{slug}/credential/verify", admin_key)
    assert v.status_code == 200, v.json
    assert v.json["identity"]["app_id"] == sp.client_id
    assert_the_sdks_work(runtime, slug, box, emulator)


def test_a_certificate_without_its_private_key_is_refused_and_nothing_is_stored(
    api: ApiClient,
    world: World,
    admin_key: str,
) -> None:
    slug = world.tenant()
    cert_pem, _ = self_signed_pem()
    r = call(
        api,
        "PUT",
        f"/v1/tenants/{slug}/credential",
        admin_key,
        json={
            "kind": "service_principal",
            "client_id": new_guid(),
            "certificate_pem": cert_pem,
        },
    )
    assert r.status_code == 400
    assert "private key" in r.json["detail"]
    assert call(api, "GET", f"/v1/tenants/{slug}/credential", admin_key).status_code == 404


def test_a_wrong_secret_is_reported_as_rejected_not_as_a_server_error(
    api: ApiClient,
    world: World,
    admin_key: str,
    sandbox: Sandbox,
) -> None:
    slug = tenant_for(world, sandbox)
    put_secret_credential(api, admin_key, slug, sandbox.client_id, "wrong-secret")
    v = call(api, "POST", f"/v1/tenants/{slug}/credential/verify", admin_key)
    assert v.status_code == 424
    assert v.json["code"] == "credential_rejected"
    assert "invalid client secret" in v.json["detail"]
    assert (
        call(api, "GET", f"/v1/tenants/{slug}/credential", admin_key).json["status"] == "rejected"
    )


def test_an_unknown_client_is_rejected_with_a_clear_reason(
    api: ApiClient,
    world: World,
    admin_key: str,
    sandbox: Sandbox,
) -> None:
    slug = tenant_for(world, sandbox)
    put_secret_credential(api, admin_key, slug, new_guid(), f"secret-of-nobody-{new_guid()}")
    v = call(api, "POST", f"/v1/tenants/{slug}/credential/verify", admin_key)
    assert v.status_code == 424
    assert v.json["code"] == "credential_rejected"


def test_an_unreachable_authority_is_a_retryable_503(
    api: ApiClient,
    world: World,
    admin_key: str,
    fresh_emulator: EmulatorHandle,
    settings: Settings,
    database: Database,
) -> None:
    from service.app import create_app
    from tests.support.api import emulator_azure_settings

    box = fresh_emulator.sandbox()
    app = create_app(
        settings.with_overrides(azure=emulator_azure_settings(fresh_emulator)), database=database
    )
    with app.test_client() as client:
        local = ApiClient(client)
        slug = tenant_for(world, box)
        put_secret_credential(local, admin_key, slug, box.client_id, box.client_secret)
        fresh_emulator.server.stop()
        v = call(local, "POST", f"/v1/tenants/{slug}/credential/verify", admin_key)
    assert v.status_code == 503
    assert v.json["code"] == "azure_unavailable"
    assert v.headers["Retry-After"]


def _delegated_tenant(
    api: ApiClient, world: World, admin_key: str, emulator: EmulatorHandle, box: Sandbox
) -> tuple[str, str]:
    app = emulator.state.add_public_client(box.tenant_id)
    username = f"ops-{new_guid()[:8]}@contoso.example"
    emulator.state.add_user(box.tenant_id, username)
    slug = tenant_for(world, box)
    r = call(
        api,
        "PUT",
        f"/v1/tenants/{slug}/credential",
        admin_key,
        json={"kind": "delegated", "client_id": app.client_id},
    )
    assert r.status_code == 201, r.json
    assert r.json["status"] == "login_required"
    assert r.json["signed_in"] is False
    return slug, username


def _sign_in(
    api: ApiClient, admin_key: str, emulator: EmulatorHandle, slug: str, username: str
) -> dict:  # type: ignore[type-arg]
    start = call(api, "POST", f"/v1/tenants/{slug}/credential/device-logins", admin_key)
    assert start.status_code == 202, start.json
    login = start.json
    assert login["state"] == "pending"
    assert login["user_code"]
    assert login["verification_uri"]
    location = start.headers["Location"]
    assert call(api, "GET", location, admin_key).json["state"] == "pending"
    emulator.approve_device_code(login["user_code"], username)
    deadline = time.monotonic() + 10
    while True:
        current = call(api, "GET", location, admin_key).json
        if current["state"] != "pending" or time.monotonic() > deadline:
            return current  # type: ignore[no-any-return]
        time.sleep(0.2)


def test_device_code_sign_in_end_to_end_then_a_second_process_refreshes_silently(
    api: ApiClient,
    world: World,
    admin_key: str,
    runtime: Runtime,
    emulator: EmulatorHandle,
    settings: Settings,
    sandbox: Sandbox,
) -> None:
    slug, username = _delegated_tenant(api, world, admin_key, emulator, sandbox)
    v = call(api, "POST", f"/v1/tenants/{slug}/credential/verify", admin_key)
    assert v.status_code == 424
    assert v.json["code"] == "login_required"

    done = _sign_in(api, admin_key, emulator, slug, username)
    assert done["state"] == "succeeded", done
    assert done["username"] == username
    cred = call(api, "GET", f"/v1/tenants/{slug}/credential", admin_key).json
    assert cred["status"] == "ok"
    assert cred["signed_in"]
    assert cred["identity"] == username

    v = call(api, "POST", f"/v1/tenants/{slug}/credential/verify", admin_key)
    assert v.status_code == 200, v.json
    assert v.json["identity"]["username"] == username
    assert_the_sdks_work(runtime, slug, sandbox, emulator)
    SECRETS.update(emulator.state.refresh_tokens)

    # Another process (another replica, or after a restart) starts from the stored cache.
    mark = emulator.bookmark()
    script = (
        "import sys; from service.bootstrap import build_runtime;"
        "from service.config import Settings, AzureSettings;"
        "from service.services.azure_credentials import tenant_credential;"
        f"s = Settings(database_url={settings.database_url!r},"
        f" credential_keys={settings.credential_keys!r},"
        f" azure=AzureSettings(authority_host={settings.azure.authority_host!r},"
        f" ca_bundle={settings.azure.ca_bundle!r}, instance_discovery=False));"
        "rt = build_runtime(s);"
        f"c = tenant_credential(rt, {tenant_id_of(runtime, slug)!r});"
        # A resource not in the stored cache yet: only the stored refresh token can serve it.
        "t = c.get_token('https://storage.azure.com/.default');"
        "print('ok' if t.token and t.expires_on > 0 else 'no token')"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert out.stdout.strip() == "ok", out.stderr[-3000:]
    grants = [
        e for e in emulator.requests("entra.token", since=mark) if sandbox.tenant_id in e.path
    ]
    assert len(grants) == 1  # one silent refresh, no interactive step


def test_concurrent_refreshes_from_two_processes_never_lose_the_newest_refresh_token(
    api: ApiClient,
    world: World,
    admin_key: str,
    settings: Settings,
    database: Database,
    emulator: EmulatorHandle,
    sandbox: Sandbox,
) -> None:
    """With rotation strict (a redeemed refresh token dies), two replicas refreshing at once
    must queue on the row lock: if either stored an older token, the next refresh would fail."""
    slug, username = _delegated_tenant(api, world, admin_key, emulator, sandbox)
    assert _sign_in(api, admin_key, emulator, slug, username)["state"] == "succeeded"
    emulator.state.entra.strict_refresh_token_rotation = True
    engines = [Database(database.url) for _ in range(3)]
    try:
        replicas = [build_runtime(settings, engines[i]) for i in range(2)]
        tid = tenant_id_of(replicas[0], slug)
        credentials = [tenant_credential(rt, tid) for rt in replicas]
        scopes = [f"https://resource-{i}.example/.default" for i in range(6)]
        errors: list[BaseException] = []

        def refresh(credential: Any, mine: list[str]) -> None:
            try:
                for scope in mine:
                    assert credential.get_token(scope).token
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [
            threading.Thread(target=refresh, args=(c, scopes[i::2]))
            for i, c in enumerate(credentials)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        # A third replica starts from what is stored now: the newest refresh token works.
        third = build_runtime(settings, engines[2])
        assert tenant_credential(third, tid).get_token("https://fresh.example/.default").token
    finally:
        emulator.state.entra.strict_refresh_token_rotation = False
        for engine in engines:
            engine.dispose()
    SECRETS.update(emulator.state.refresh_tokens)


def test_a_delegated_refresh_holds_no_database_lock_while_entra_answers(
    api: ApiClient,
    world: World,
    admin_key: str,
    runtime: Runtime,
    database: Database,
    emulator: EmulatorHandle,
    sandbox: Sandbox,
) -> None:
    """Entra hangs mid-refresh: another process still writes the credential row at once."""
    from sqlalchemy import text, update

    from service.db.models import TenantCredential

    slug, username = _delegated_tenant(api, world, admin_key, emulator, sandbox)
    assert _sign_in(api, admin_key, emulator, slug, username)["state"] == "succeeded"
    tid = tenant_id_of(runtime, slug)
    credential = tenant_credential(runtime, tid)
    hang = emulator.add_fault("hang", "entra.token", tenant_id=sandbox.tenant_id)
    outcome: dict[str, Any] = {}

    def refresh() -> None:
        try:
            outcome["token"] = credential.get_token("https://held.example/.default").token
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    refresher = threading.Thread(target=refresh)
    refresher.start()
    other = Database(database.url)  # another process's connection
    try:
        deadline = time.monotonic() + 20
        while hang.hits == 0:  # the refresh is now waiting on Entra
            assert time.monotonic() < deadline, "the refresh never reached Entra"
            time.sleep(0.02)
        with other.engine.begin() as conn:
            if other.url.startswith("sqlite"):
                conn.execute(text("PRAGMA busy_timeout=1500"))
            else:
                conn.execute(text("SET LOCAL lock_timeout = '1500ms'"))
            with runtime.uow() as uow:
                cred_id = uow.session.scalar(
                    select(TenantCredential.id).where(TenantCredential.tenant_id == tid)
                )
            started = time.monotonic()
            conn.execute(
                update(TenantCredential)
                .where(TenantCredential.id == cred_id)
                .values(status_detail="written while Entra was answering")
            )
        assert time.monotonic() - started < 1.5
    finally:
        emulator.clear_faults(hang.id)
        refresher.join(timeout=60)
        other.dispose()
    assert "error" not in outcome, outcome
    assert outcome["token"]
    SECRETS.update(emulator.state.refresh_tokens)


def test_every_msal_call_has_a_network_deadline(
    settings: Settings, emulator: EmulatorHandle, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """msal ignores its own timeout for a session handed to it: the session enforces one."""
    from service.adapters import identity
    from service.errors import AzureUnavailable

    app = emulator.state.add_public_client(sandbox.tenant_id)
    monkeypatch.setattr(identity, "MSAL_TIMEOUT_S", (2.0, 1.0), raising=False)
    hang = emulator.add_fault("hang", "entra.devicecode", tenant_id=sandbox.tenant_id)
    outcome: dict[str, Any] = {}

    def start() -> None:
        try:
            identity.AzureIdentity(settings.azure).start_device_flow(
                sandbox.tenant_id, app.client_id
            )
        except BaseException as exc:  # noqa: BLE001 - reported by the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=start, daemon=True)
    try:
        started = time.monotonic()
        thread.start()
        thread.join(timeout=15)
        finished = not thread.is_alive()
    finally:
        emulator.clear_faults(hang.id)
        thread.join(timeout=30)
    assert finished, "msal waited on a silent Entra with no deadline"
    assert isinstance(outcome.get("error"), AzureUnavailable), outcome
    assert time.monotonic() - started < 15

    # azure-identity's credentials (service principals, host identity) too: their transport
    # would wait 300 s per read.
    from service.ports import CredentialSpec

    spec = CredentialSpec(
        tenant_key=new_guid(),
        fingerprint="f",
        entra_tenant_id=sandbox.tenant_id,
        kind="service_principal",
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
    )
    hang = emulator.add_fault("hang", "entra.token", tenant_id=sandbox.tenant_id)
    outcome.clear()

    def verify() -> None:
        try:
            identity.AzureIdentity(settings.azure).verify(spec)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=verify, daemon=True)
    try:
        thread.start()
        thread.join(timeout=20)  # azure-identity retries a timed-out read three times
        finished = not thread.is_alive()
    finally:
        emulator.clear_faults(hang.id)
        thread.join(timeout=30)
    assert finished, "azure-identity waited on a silent Entra with no deadline"
    assert isinstance(outcome.get("error"), AzureUnavailable), outcome


def test_the_audit_trail_never_holds_a_user_code_or_device_code(
    api: ApiClient,
    world: World,
    admin_key: str,
    database: Database,
    emulator: EmulatorHandle,
    sandbox: Sandbox,
) -> None:
    from service.db.models import AuditEvent, DeviceLogin, Tenant

    slug, username = _delegated_tenant(api, world, admin_key, emulator, sandbox)
    pending = call(api, "POST", f"/v1/tenants/{slug}/credential/device-logins", admin_key).json
    assert _sign_in(api, admin_key, emulator, slug, username)["state"] == "succeeded"
    codes = (
        {pending["user_code"]}
        | {
            c.device_code
            for c in emulator.state.device_codes.values()
            if c.tenant_id == sandbox.tenant_id
        }
        | {
            c.user_code
            for c in emulator.state.device_codes.values()
            if c.tenant_id == sandbox.tenant_id
        }
    )
    assert len(codes) >= 3
    with database.session_factory() as s:
        tenant_id = s.scalars(select(Tenant.id).where(Tenant.slug == slug)).one()
        logins = s.scalars(select(DeviceLogin.id).where(DeviceLogin.tenant_id == tenant_id)).all()
        events = s.scalars(select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)).all()
    assert {e.target_id for e in events} >= set(logins)
    trail = repr([(e.action, e.before, e.after) for e in events])
    assert "credential.device_login.start" in trail
    for code in codes:
        assert code not in trail
    assert "user_code" not in trail, trail


def test_a_revoked_refresh_token_turns_into_login_required(
    api: ApiClient,
    world: World,
    admin_key: str,
    runtime: Runtime,
    emulator: EmulatorHandle,
    sandbox: Sandbox,
) -> None:
    slug, username = _delegated_tenant(api, world, admin_key, emulator, sandbox)
    assert _sign_in(api, admin_key, emulator, slug, username)["state"] == "succeeded"
    assert emulator.state.revoke_refresh_tokens(tenant_id=sandbox.tenant_id) >= 1
    credential = tenant_credential(runtime, tenant_id_of(runtime, slug))
    # The cached ARM token is still good; a new resource needs the (revoked) refresh token.
    with pytest.raises(Exception) as caught:
        credential.get_token("https://api.loganalytics.io/.default")
    from service.adapters.identity_errors import map_identity_error

    mapped = map_identity_error(caught.value)
    assert isinstance(mapped, LoginRequired)
    assert "sign in again" in mapped.detail


def test_the_host_identity_comes_from_the_environment(
    api: ApiClient,
    world: World,
    admin_key: str,
    runtime: Runtime,
    emulator: EmulatorHandle,
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", sandbox.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", sandbox.client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", sandbox.client_secret)
    slug = tenant_for(world, sandbox)
    allow_host_identity(monkeypatch, runtime, slug)
    r = call(
        api, "PUT", f"/v1/tenants/{slug}/credential", admin_key, json={"kind": "host_identity"}
    )
    assert r.status_code == 201
    assert r.json["method"] == "ambient"
    v = call(api, "POST", f"/v1/tenants/{slug}/credential/verify", admin_key)
    assert v.status_code == 200, v.json
    assert v.json["identity"]["app_id"] == sandbox.client_id
    assert_the_sdks_work(runtime, slug, sandbox, emulator)


def test_many_log_queries_for_one_tenant_cost_one_token_request(
    api: ApiClient,
    world: World,
    admin_key: str,
    runtime: Runtime,
    emulator: EmulatorHandle,
) -> None:
    box = emulator.sandbox()
    slug = tenant_for(world, box)
    put_secret_credential(api, admin_key, slug, box.client_id, box.client_secret)
    mark = emulator.bookmark()
    tid = tenant_id_of(runtime, slug)
    for _ in range(25):
        assert query_logs(tenant_credential(runtime, tid), box, emulator) == LogsQueryStatus.SUCCESS
    assert (
        len([e for e in emulator.requests("entra.token", since=mark) if box.tenant_id in e.path])
        == 1
    )
    assert len(emulator.requests("la.", since=mark)) >= 25


def test_key_rotation_re_encrypts_so_the_old_key_can_go(
    settings: Settings, empty_database_url: str, sandbox: Sandbox
) -> None:
    """On a database of its own: re-encryption covers every stored secret, so another test's
    rows (in the shared database, in any order) must not decide this one."""
    from cryptography.fernet import Fernet

    from service.db import migrate
    from service.errors import SecretsUnavailable
    from service.services.azure_credentials import reencrypt_all

    migrate.upgrade(empty_database_url)
    own = Database(empty_database_url)
    try:
        base = settings.with_overrides(database_url=empty_database_url)
        slug = World(build_runtime(base, own)).azure_tenant(sandbox)  # stored with the old key
        new_key = Fernet.generate_key().decode()
        old_key = settings.credential_keys[0]
        both = build_runtime(base.with_overrides(credential_keys=(new_key, old_key)), own)
        assert reencrypt_all(both) == 1
        only_new = build_runtime(base.with_overrides(credential_keys=(new_key,)), own)
        only_old = build_runtime(base.with_overrides(credential_keys=(old_key,)), own)
        tid = tenant_id_of(only_new, slug)
        token = tenant_credential(only_new, tid).get_token("https://management.azure.com/.default")
        assert token.token
        with pytest.raises(SecretsUnavailable):
            tenant_credential(only_old, tid)
    finally:
        own.dispose()


def test_the_service_refuses_to_start_with_stored_secrets_and_no_key(
    settings: Settings,
    database: Database,
    api: ApiClient,
    world: World,
    admin_key: str,
    sandbox: Sandbox,
) -> None:
    from service.app import create_app
    from service.bootstrap import SecretsKeyMissing

    slug = tenant_for(world, sandbox)
    put_secret_credential(api, admin_key, slug, sandbox.client_id, "s3cret-value")
    with pytest.raises(SecretsKeyMissing):
        create_app(settings.with_overrides(credential_keys=()), database=database)


def test_the_leak_scan_sees_a_secret_logged_at_debug_and_a_jwt() -> None:
    """The scan after each test is not vacuous: DEBUG lines of the SDKs reach the capture."""
    probe = f"probe-{new_guid()}"
    logging.getLogger("msal.token_cache").debug("probe line %s", probe)
    logs = LOG.getvalue()
    assert probe in logs, "log capture missed a DEBUG line: the scan would prove nothing"
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwcm9iZSJ9.c2lnbmF0dXJl"
    found = leaks({probe}, {"logs": logs, "responses": jwt})
    assert found == ["a secret (prob...) leaked into logs", "a JWT leaked into responses"]
    LOG.seek(0)  # the probe is not a leak of this test
    LOG.truncate()
