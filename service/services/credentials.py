"""Tenant credentials: configure, verify, and sign in delegated users with the device-code flow.

Secrets (client secrets, certificate keys, msal token caches, device codes) are encrypted with the
runtime's SecretBox before they reach the database and never leave this module in a view.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from service.db.models import DeviceLogin, Tenant, TenantCredential
from service.db.session import UnitOfWork
from service.db.types import utcnow
from service.domain.access import Role
from service.domain.etags import etag_for
from service.domain.states import CredentialKind, CredentialMethod
from service.errors import (
    CredentialMissing,
    HostIdentityNotAllowed,
    LoginRequired,
    NotFound,
    SecretsUnavailable,
    ServiceError,
    ValidationFailed,
)
from service.ports import CredentialSpec
from service.services import audit
from service.services.context import CallContext
from service.services.discovery_due import discover_soon
from service.services.lookup import check_if_match, visible_tenant
from service.services.runtime import Runtime
from service.services.token_cache import DbTokenCacheStore


@dataclass(frozen=True)
class CredentialView:
    tenant: str
    kind: CredentialKind
    method: CredentialMethod
    client_id: str | None
    identity: str | None
    status: str
    status_detail: str | None
    certificate_thumbprint: str | None
    certificate_not_after: datetime | None
    signed_in: bool
    last_verified_at: datetime | None
    created_at: datetime
    updated_at: datetime
    etag: str


@dataclass(frozen=True)
class VerificationView:
    tenant: str
    kind: CredentialKind
    identity: dict[str, str]
    token_expires_on: datetime
    verified_at: datetime


def _view(c: TenantCredential, tenant: str) -> CredentialView:
    return CredentialView(
        tenant=tenant,
        kind=CredentialKind(c.kind),
        method=CredentialMethod(c.method),
        client_id=c.client_id,
        identity=c.identity,
        status=c.status,
        status_detail=c.status_detail,
        certificate_thumbprint=c.certificate_thumbprint,
        certificate_not_after=c.certificate_not_after,
        signed_in=c.token_cache_ciphertext is not None,
        last_verified_at=c.last_verified_at,
        created_at=c.created_at,
        updated_at=c.updated_at,
        etag=etag_for(c.version),
    )


def credential_of(uow: UnitOfWork, tenant: Tenant) -> TenantCredential:
    cred = uow.session.scalar(
        select(TenantCredential).where(TenantCredential.tenant_id == tenant.id)
    )
    if cred is None:
        raise CredentialMissing(f"tenant '{tenant.slug}' has no Azure credential configured")
    return cred


def admin_tenant(uow: UnitOfWork, ctx: CallContext, slug: str) -> Tenant:
    tenant = visible_tenant(uow, ctx.principal, slug)  # 404 first: no hint for foreign tenants
    ctx.require(Role.ADMIN)
    return tenant


def check_host_identity_allowed(rt: Runtime, ctx: CallContext, tenant: Tenant) -> None:
    """``host_identity`` acts with the service's own Azure identity: a global admin's choice,
    and only for the tenants the operator named in HOST_IDENTITY_TENANTS."""
    if not ctx.principal.is_global:
        raise HostIdentityNotAllowed(
            "only a global admin may set the credential to 'host_identity'"
        )
    host_identity_allowed(rt, tenant)


def host_identity_allowed(rt: Runtime, tenant: Tenant) -> None:
    if tenant.slug not in rt.settings.host_identity_tenants:
        raise HostIdentityNotAllowed(
            f"tenant '{tenant.slug}' may not use the service's host identity "
            "(it is not listed in HOST_IDENTITY_TENANTS)"
        )


def encrypt_secret(rt: Runtime, value: bytes) -> str:
    if not rt.secret_box.configured:
        raise SecretsUnavailable(
            "the service has no CREDENTIAL_KEYS configured and cannot store secrets"
        )
    return rt.secret_box.encrypt(value)


# -- configuration -----------------------------------------------------------------------------
def put_credential(
    rt: Runtime,
    ctx: CallContext,
    slug: str,
    data: dict[str, Any],
    if_match: str | None,
) -> tuple[CredentialView, bool]:
    """Create or replace the tenant's credential. Returns the view and whether it was created."""
    with rt.uow() as uow:
        tenant = admin_tenant(uow, ctx, slug)
        if data["kind"] == CredentialKind.HOST_IDENTITY:
            check_host_identity_allowed(rt, ctx, tenant)
        existing = uow.session.scalar(
            select(TenantCredential).where(TenantCredential.tenant_id == tenant.id)
        )
        if existing is not None:
            check_if_match(if_match, existing.version)
        elif if_match is not None and if_match.strip() != "*":
            check_if_match(if_match, 0)  # nothing to match: 412, as RFC 9110 asks
        kind = data["kind"]
        values: dict[str, Any] = {
            "kind": kind,
            "client_id": (data.get("client_id") or "").lower() or None,
            "secret_ciphertext": None,
            "certificate_thumbprint": None,
            "certificate_not_after": None,
            "token_cache_ciphertext": None,
            "token_refresh_lease_until": None,
            "identity": None,
            "status": "unverified",
            "status_detail": None,
            "last_verified_at": None,
        }
        if kind == CredentialKind.SERVICE_PRINCIPAL and data.get("certificate_pem"):
            pem = data["certificate_pem"].encode()
            try:
                info = rt.identity.inspect_certificate(pem)
            except ValueError as exc:
                raise ValidationFailed(
                    f"certificate_pem: {exc}",
                    [{"field": "body.certificate_pem", "message": str(exc)}],
                ) from None
            if info.not_after <= utcnow():
                raise ValidationFailed(
                    "certificate_pem: the certificate has expired",
                    [{"field": "body.certificate_pem", "message": "the certificate has expired"}],
                )
            values.update(
                method=CredentialMethod.CERTIFICATE,
                secret_ciphertext=encrypt_secret(rt, pem),
                certificate_thumbprint=info.thumbprint_sha1,
                certificate_not_after=info.not_after,
            )
        elif kind == CredentialKind.SERVICE_PRINCIPAL:
            values.update(
                method=CredentialMethod.SECRET,
                secret_ciphertext=encrypt_secret(rt, data["client_secret"].encode()),
            )
        elif kind == CredentialKind.DELEGATED:
            values.update(
                method=CredentialMethod.DEVICE_CODE,
                status="login_required",
                status_detail="no user has signed in yet: start a device login",
            )
        else:
            values.update(method=CredentialMethod.AMBIENT)

        before = _view(existing, slug) if existing is not None else None
        if existing is not None:
            # A refresh of the old credential still in flight must not store into the new one.
            values["token_cache_version"] = existing.token_cache_version + 1
        if existing is None:
            cred = TenantCredential(tenant_id=tenant.id, **values)
            uow.session.add(cred)
        else:
            cred = existing
            for key, value in values.items():
                setattr(cred, key, value)
        # A replaced credential ends any sign-in in progress for the old one.
        uow.session.execute(
            delete(DeviceLogin).where(
                DeviceLogin.tenant_id == tenant.id, DeviceLogin.state == "pending"
            )
        )
        uow.flush()
        discover_soon(uow.session, tenant.id)  # list its workspaces with the new credential now
        after = _view(cred, slug)
        audit.record(
            uow,
            ctx,
            action="credential.put",
            target_type="credential",
            target_id=cred.id,
            tenant_id=tenant.id,
            before=before,
            after=after,
        )
        uow.commit()
        forget_recent(rt, tenant.id)
        rt.identity.forget(tenant.id)
        return after, existing is None


def _set_credential(uow: UnitOfWork, tenant: Tenant) -> TenantCredential:
    """The credential resource itself: 404 when none is set, like a policy scope that is not
    set. Using a tenant without one stays 409 ``credential_missing`` (``credential_of``)."""
    try:
        return credential_of(uow, tenant)
    except CredentialMissing as exc:
        raise NotFound(exc.detail) from None


def get_credential(rt: Runtime, ctx: CallContext, slug: str) -> CredentialView:
    with rt.uow() as uow:
        tenant = admin_tenant(uow, ctx, slug)
        return _view(_set_credential(uow, tenant), slug)


def delete_credential(rt: Runtime, ctx: CallContext, slug: str, if_match: str | None) -> None:
    with rt.uow() as uow:
        tenant = admin_tenant(uow, ctx, slug)
        cred = _set_credential(uow, tenant)
        check_if_match(if_match, cred.version)
        before = _view(cred, slug)
        uow.session.execute(delete(DeviceLogin).where(DeviceLogin.tenant_id == tenant.id))
        uow.session.delete(cred)
        audit.record(
            uow,
            ctx,
            action="credential.delete",
            target_type="credential",
            target_id=cred.id,
            tenant_id=tenant.id,
            before=before,
        )
        uow.commit()
        forget_recent(rt, tenant.id)
        rt.identity.forget(tenant.id)


# -- using it ----------------------------------------------------------------------------------
def credential_spec(rt: Runtime, tenant: Tenant, cred: TenantCredential) -> CredentialSpec:
    """Decrypt what the identity adapter needs to build the tenant's TokenCredential.

    A ``host_identity`` credential is usable only while its tenant is still allowed to use it.
    """
    if cred.kind == CredentialKind.HOST_IDENTITY:
        host_identity_allowed(rt, tenant)
    secret = rt.secret_box.decrypt(cred.secret_ciphertext) if cred.secret_ciphertext else None
    return CredentialSpec(
        tenant_key=tenant.id,
        fingerprint=_fingerprint(tenant, cred),
        entra_tenant_id=tenant.entra_tenant_id,
        kind=cred.kind,
        client_id=cred.client_id,
        client_secret=secret.decode()
        if secret is not None and cred.method == CredentialMethod.SECRET
        else None,
        certificate_pem=secret if cred.method == CredentialMethod.CERTIFICATE else None,
        cache_store=(
            DbTokenCacheStore(rt.database, rt.secret_box, cred.id)
            if cred.kind == CredentialKind.DELEGATED
            else None
        ),
    )


def _fingerprint(tenant: Tenant, cred: TenantCredential) -> str:
    # Not the row version: verification and token refreshes update the row without changing
    # how to authenticate, and the warm credential (with its token cache) must survive them.
    return "|".join(
        (
            cred.id,
            cred.kind,
            cred.method,
            cred.client_id or "",
            tenant.entra_tenant_id,
            cred.secret_ciphertext or "",
        )
    )


def forget_recent(rt: Runtime, tenant_id: str) -> None:
    """Drop the memoised credential of a tenant (it was changed or deleted here)."""
    rt.credential_memo.forget(tenant_id)


def tenant_credential(rt: Runtime, tenant_id: str, *, fresh: bool = False) -> Any:
    """The TokenCredential for a tenant (one per tenant, reused): for the Azure adapters.

    Memoised on the runtime for a few seconds (``credential_memo``): log queries need it on
    every call, and reading and decrypting the row costs a few database round trips. A change
    made through this runtime drops the entry at once; other processes (the API for the worker)
    would see it only when the entry expires, so work that runs once per discovery or attempt
    asks for it ``fresh``: a credential replaced a moment ago is used at once.
    """
    if fresh:
        credential = _load_credential(rt, tenant_id)
        rt.credential_memo.put(tenant_id, credential)
        return credential
    return rt.credential_memo.get(tenant_id, lambda: _load_credential(rt, tenant_id))


def _load_credential(rt: Runtime, tenant_id: str) -> Any:
    with rt.uow() as uow:
        tenant = uow.session.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound("tenant not found")
        cred = credential_of(uow, tenant)
        if cred.kind == CredentialKind.DELEGATED and cred.token_cache_ciphertext is None:
            raise LoginRequired("no user has signed in for this tenant yet")
        spec = credential_spec(rt, tenant, cred)
    return rt.identity.credential(spec)


def verify_credential(rt: Runtime, ctx: CallContext, slug: str) -> VerificationView:
    """Acquire a token now; record the outcome on the credential and in the audit trail."""
    with rt.uow() as uow:
        tenant = admin_tenant(uow, ctx, slug)
        cred = credential_of(uow, tenant)
        now = utcnow()
        failure: ServiceError | None = None
        try:
            spec = credential_spec(rt, tenant, cred)
            if cred.kind == CredentialKind.DELEGATED and cred.token_cache_ciphertext is None:
                raise LoginRequired("no user has signed in for this tenant yet")
            info = rt.identity.verify(spec)
        except SecretsUnavailable:
            raise  # the service's own configuration, not the credential's
        except ServiceError as exc:
            failure = exc
        status = (
            "ok"
            if failure is None
            else {
                "login_required": "login_required",
                "credential_rejected": "rejected",
                "wrong_tenant_token": "rejected",
                "host_identity_not_allowed": "rejected",
                "no_host_identity": "no_host_identity",
            }.get(failure.code, "unreachable")
        )
        # The token-cache column may have moved on under a concurrent refresh: update only these.
        uow.session.execute(
            update(TenantCredential)
            .where(TenantCredential.id == cred.id)
            .values(
                status=status,
                status_detail=None if failure is None else failure.detail[:500],
                last_verified_at=now,
                identity=(
                    (info.identity.get("username") or info.identity.get("app_id") or cred.identity)
                    if failure is None
                    else cred.identity
                ),
            )
            .execution_options(synchronize_session=False)
        )
        if failure is None and cred.status != "ok":
            discover_soon(uow.session, tenant.id)  # usable again: list its workspaces at once
        audit.record(
            uow,
            ctx,
            action="credential.verify",
            target_type="credential",
            target_id=cred.id,
            tenant_id=tenant.id,
            after={"status": status, "error": None if failure is None else failure.code},
        )
        uow.commit()
        if failure is not None:
            raise failure
        return VerificationView(
            tenant=slug,
            kind=CredentialKind(cred.kind),
            identity=info.identity,
            token_expires_on=info.expires_on,
            verified_at=now,
        )


# -- key rotation ------------------------------------------------------------------------------
def reencrypt_all(rt: Runtime) -> int:
    """Re-encrypt every stored secret with the newest key; returns how many were rewritten.

    After this, keys other than the first can be removed from CREDENTIAL_KEYS.
    """
    box = rt.secret_box
    count = 0
    with rt.uow() as uow:
        for cred in uow.session.scalars(select(TenantCredential)):
            for column in ("secret_ciphertext", "token_cache_ciphertext"):
                token = getattr(cred, column)
                if token:
                    uow.session.execute(
                        update(TenantCredential)
                        .where(TenantCredential.id == cred.id)
                        .values({column: box.rotate(token)})
                        .execution_options(synchronize_session=False)
                    )
                    count += 1
        for login in uow.session.scalars(
            select(DeviceLogin).where(DeviceLogin.flow_ciphertext.is_not(None))
        ):
            assert login.flow_ciphertext is not None
            login.flow_ciphertext = box.rotate(login.flow_ciphertext)
            count += 1
        uow.commit()
    return count


def stored_secret_count(rt: Runtime) -> int:
    """How many rows hold encrypted secrets (start-up refuses to run with some and no key)."""
    with rt.uow() as uow:
        creds = uow.session.scalars(
            select(TenantCredential.id).where(
                (TenantCredential.secret_ciphertext.is_not(None))
                | (TenantCredential.token_cache_ciphertext.is_not(None))
            )
        ).all()
        logins = uow.session.scalars(
            select(DeviceLogin.id).where(DeviceLogin.flow_ciphertext.is_not(None))
        ).all()
    return len(creds) + len(logins)
