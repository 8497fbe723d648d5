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
from service.services import audit
from service.services.azure_credentials import (
    credential_of,
    credential_spec,
    forget_recent,
    host_identity_allowed,
)
from service.services.context import CallContext
from service.services.discovery_due import discover_soon
from service.services.lookup import check_if_match, visible_tenant
from service.services.runtime import Runtime


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
