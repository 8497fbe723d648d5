"""Device-code sign-in for delegated credentials, polled without holding a request thread.

``POST .../device-logins`` starts the flow and stores it (encrypted: it holds the device code).
Each read of a pending sign-in polls Entra at most once, and the worker polls the due ones in the
background, so the sign-in completes whether or not anyone is watching, and survives restarts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from service.db.models import DeviceLogin, Tenant, TenantCredential
from service.db.types import utcnow
from service.domain.access import Principal, Role
from service.domain.states import CredentialKind
from service.errors import Conflict, NotFound, SecretsUnavailable, ServiceError
from service.services import audit
from service.services.azure_credentials import credential_of, forget_recent
from service.services.context import CallContext
from service.services.credentials import admin_tenant, encrypt_secret
from service.services.discovery_due import discover_soon
from service.services.runtime import Runtime


@dataclass(frozen=True)
class DeviceLoginView:
    id: str
    tenant: str
    state: str
    user_code: str
    verification_uri: str
    message: str
    expires_at: datetime
    username: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


def _login_view(d: DeviceLogin, tenant: str) -> DeviceLoginView:
    return DeviceLoginView(
        id=d.id,
        tenant=tenant,
        state=d.state,
        user_code=d.user_code,
        verification_uri=d.verification_uri,
        message=d.message,
        expires_at=d.expires_at,
        username=d.username,
        error=d.error,
        created_at=d.created_at,
        finished_at=d.finished_at,
    )


def start_device_login(rt: Runtime, ctx: CallContext, slug: str) -> DeviceLoginView:
    with rt.uow() as uow:
        tenant = admin_tenant(uow, ctx, slug)
        cred = credential_of(uow, tenant)
        if cred.kind != CredentialKind.DELEGATED or cred.client_id is None:
            raise Conflict("device-code sign-in is only for a 'delegated' credential")
        if not rt.secret_box.configured:
            raise SecretsUnavailable("the service has no CREDENTIAL_KEYS configured")
        flow = rt.identity.start_device_flow(tenant.entra_tenant_id, cred.client_id)
        now = utcnow()
        login = DeviceLogin(
            tenant_id=tenant.id,
            client_id=cred.client_id,
            user_code=flow.user_code,
            verification_uri=flow.verification_uri,
            message=flow.message[:1000],
            expires_at=flow.expires_at,
            interval_s=flow.interval_s,
            next_poll_at=now + timedelta(seconds=flow.interval_s),
            flow_ciphertext=encrypt_secret(rt, json.dumps(flow.state).encode()),
            created_by=ctx.principal.key_id,
        )
        uow.session.add(login)
        uow.flush()
        audit.record(
            uow,
            ctx,
            action="credential.device_login.start",
            target_type="device_login",
            target_id=login.id,
            tenant_id=tenant.id,
            # Never the user code or the device code: either completes someone else's sign-in.
            after={"expires_at": login.expires_at, "verification_uri": login.verification_uri},
        )
        uow.commit()
        return _login_view(login, slug)


def get_device_login(rt: Runtime, ctx: CallContext, slug: str, login_id: str) -> DeviceLoginView:
    """Read a sign-in; if it is pending and due, poll Entra once first (never blocks long)."""
    with rt.uow(read_only=True) as uow:
        tenant = admin_tenant(uow, ctx, slug)
        login = uow.session.scalar(
            select(DeviceLogin).where(
                DeviceLogin.id == login_id, DeviceLogin.tenant_id == tenant.id
            )
        )
        if login is None:
            raise NotFound(f"device login '{login_id}' not found")
        if login.state == "pending":
            poll_device_login(rt, login.id)
            uow.session.refresh(login)
        return _login_view(login, slug)


def poll_device_login(rt: Runtime, login_id: str) -> str:
    """Poll one pending sign-in if it is due; returns its state afterwards.

    The poll is claimed with a conditional UPDATE of ``next_poll_at``, so concurrent readers (API
    replicas, the worker) never poll the same device code twice at once; the state lives in the
    database, so a restart loses nothing.
    """
    now = utcnow()
    with rt.uow() as uow:
        login = uow.session.get(DeviceLogin, login_id)
        if login is None or login.state != "pending":
            return login.state if login is not None else "missing"
        if login.next_poll_at > now and login.expires_at > now:
            return "pending"
        claimed = uow.session.execute(
            update(DeviceLogin)
            .where(
                DeviceLogin.id == login_id,
                DeviceLogin.state == "pending",
                DeviceLogin.next_poll_at == login.next_poll_at,
            )
            .values(next_poll_at=now + timedelta(seconds=login.interval_s))
            .execution_options(synchronize_session=False)
        )
        uow.commit()
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return "pending"
        tenant = uow.session.get(Tenant, login.tenant_id)
        assert tenant is not None
        flow = json.loads(rt.secret_box.decrypt(login.flow_ciphertext or "").decode())
        client_id, entra_tenant_id = login.client_id, tenant.entra_tenant_id
        expired = login.expires_at <= now
    if expired:
        return _finish(rt, login_id, "expired", error="the sign-in code expired before it was used")
    result = rt.identity.poll_device_flow(entra_tenant_id, client_id, flow)
    if result.status == "pending":
        return "pending"
    return _finish(
        rt,
        login_id,
        result.status,
        error=result.error,
        cache=result.cache,
        username=result.username,
    )


def _finish(
    rt: Runtime,
    login_id: str,
    state: str,
    *,
    error: str | None = None,
    cache: str | None = None,
    username: str | None = None,
) -> str:
    with rt.uow() as uow:
        login = uow.session.get(DeviceLogin, login_id)
        if login is None or login.state != "pending":
            return login.state if login is not None else "missing"
        login.state = state
        login.error = error[:500] if error else None
        login.username = username
        login.finished_at = utcnow()
        login.flow_ciphertext = None  # the device code is spent: keep nothing secret around
        cred = uow.session.scalar(
            select(TenantCredential).where(TenantCredential.tenant_id == login.tenant_id)
        )
        if (
            state == "succeeded"
            and cache is not None
            and cred is not None
            and cred.kind == CredentialKind.DELEGATED
            and cred.client_id == login.client_id
        ):
            cred.token_cache_ciphertext = rt.secret_box.encrypt(cache.encode())
            cred.token_cache_version = cred.token_cache_version + 1
            cred.token_refresh_lease_until = None  # a refresher of the old cache stores nothing
            cred.identity = username
            cred.status = "ok"
            cred.status_detail = None
            discover_soon(uow.session, login.tenant_id)  # its endpoints appear without a sync
        system = CallContext(Principal(key_id=login.created_by, role=Role.ADMIN))
        audit.record(
            uow,
            system,
            action=f"credential.device_login.{state}",
            target_type="device_login",
            target_id=login.id,
            tenant_id=login.tenant_id,
            after={"state": state, "username": username, "error": login.error},
        )
        uow.commit()
        if state == "succeeded":
            forget_recent(rt, login.tenant_id)
            rt.identity.forget(login.tenant_id)
        return state


def poll_due_device_logins(rt: Runtime, *, limit: int = 50) -> int:
    """Poll every pending sign-in that is due (the worker calls this); returns how many."""
    with rt.uow(read_only=True) as uow:
        ids = uow.session.scalars(
            select(DeviceLogin.id)
            .where(DeviceLogin.state == "pending", DeviceLogin.next_poll_at <= utcnow())
            .limit(limit)
        ).all()
    for login_id in ids:
        try:
            poll_device_login(rt, login_id)
        except ServiceError:
            continue  # Entra unreachable: the next sweep tries again
    return len(ids)
