"""API keys: random secrets shown once, stored as hashes; roles and tenant binding."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from service.db.models import ApiKey, Tenant
from service.db.session import UnitOfWork
from service.db.types import utcnow
from service.domain.access import Principal, Role
from service.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from service.services import audit
from service.services.context import CallContext
from service.services.lookup import visible_tenant
from service.services.pagination import Page, PageRequest, paginate

KEY_PREFIX = "amlcp_"
_SHOWN_PREFIX_LEN = len(KEY_PREFIX) + 6


@dataclass(frozen=True)
class ApiKeyView:
    id: str
    name: str
    prefix: str
    role: str
    tenant: str | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class CreatedApiKey:
    """The one response that carries the secret."""

    api_key: ApiKeyView
    secret: str


def hash_key(secret: str, pepper: bytes) -> str:
    """Keys are 256-bit random, so a fast hash is enough; a pepper (HMAC) is optional."""
    if pepper:
        return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(secret.encode()).hexdigest()


def _view(k: ApiKey, tenant_slug: str | None) -> ApiKeyView:
    return ApiKeyView(
        id=k.id,
        name=k.name,
        prefix=k.prefix,
        role=k.role,
        tenant=tenant_slug,
        created_at=k.created_at,
        created_by=k.created_by,
        expires_at=k.expires_at,
        revoked_at=k.revoked_at,
    )


def authenticate(uow: UnitOfWork, secret: str, pepper: bytes) -> Principal:
    """Resolve a bearer secret to its principal, or raise 401 (one message for every failure)."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        raise Unauthorized("invalid API key")
    key = uow.session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret, pepper)))
    now = utcnow()
    if (
        key is None
        or key.revoked_at is not None
        or (key.expires_at is not None and key.expires_at <= now)
    ):
        raise Unauthorized("invalid, expired or revoked API key")
    return Principal(key_id=key.id, role=Role.parse(key.role), tenant_id=key.tenant_id)


def create_api_key(
    uow: UnitOfWork, ctx: CallContext, data: dict[str, Any], pepper: bytes
) -> CreatedApiKey:
    """Create a key. Admins only; a tenant-bound admin can only mint keys for its own tenant."""
    principal = ctx.principal
    tenant: Tenant | None = None
    if data.get("tenant") is not None:
        # Looked up before the role check: a foreign tenant is a 404 whatever the caller's role.
        tenant = visible_tenant(uow, principal, data["tenant"])
    ctx.require(Role.ADMIN)
    role = Role.parse(data["role"])
    if not principal.has_role(role):
        raise Forbidden("cannot create a key with a higher role than your own")
    if tenant is None and principal.tenant_id is not None:
        raise Forbidden("a tenant-bound key can only create keys bound to its tenant")
    expires_at = data.get("expires_at")
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed(
            "expires_at is in the past",
            [{"field": "expires_at", "message": "must be in the future"}],
        )
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=data["name"],
        prefix=secret[:_SHOWN_PREFIX_LEN],
        key_hash=hash_key(secret, pepper),
        role=role.label,
        tenant_id=tenant.id if tenant else None,
        created_by=principal.key_id,
        expires_at=expires_at,
    )
    uow.session.add(key)
    uow.flush()
    result = _view(key, tenant.slug if tenant else None)
    audit.record(
        uow,
        ctx,
        action="api_key.create",
        target_type="api_key",
        target_id=key.id,
        tenant_id=key.tenant_id,
        after=result,
    )
    uow.commit()
    return CreatedApiKey(api_key=result, secret=secret)


def _visible_key(uow: UnitOfWork, principal: Principal, key_id: str) -> tuple[ApiKey, str | None]:
    row = uow.session.execute(
        select(ApiKey, Tenant.slug)
        .outerjoin(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.id == key_id)
    ).first()
    if row is None or (principal.tenant_id is not None and row[0].tenant_id != principal.tenant_id):
        raise NotFound(f"API key '{key_id}' not found")
    return row[0], row[1]


def get_api_key(uow: UnitOfWork, ctx: CallContext, key_id: str) -> ApiKeyView:
    found = _visible_key(uow, ctx.principal, key_id)
    ctx.require(Role.ADMIN)
    return _view(*found)


def list_api_keys(
    uow: UnitOfWork, ctx: CallContext, page: PageRequest, *, tenant: str | None = None
) -> Page[ApiKeyView]:
    stmt = select(ApiKey)
    if tenant is not None:
        stmt = stmt.where(ApiKey.tenant_id == visible_tenant(uow, ctx.principal, tenant).id)
    elif ctx.principal.tenant_id is not None:
        stmt = stmt.where(ApiKey.tenant_id == ctx.principal.tenant_id)
    ctx.require(Role.ADMIN)
    rows, cursor = paginate(uow.session, stmt, ApiKey.id, page)
    slugs = _tenant_slugs(uow, {k.tenant_id for k in rows if k.tenant_id})
    return Page([_view(k, slugs.get(k.tenant_id or "")) for k in rows], cursor)


def revoke_api_key(uow: UnitOfWork, ctx: CallContext, key_id: str) -> None:
    """Revoke (idempotent): the key stops working at once; the record stays for the audit trail."""
    key, slug = _visible_key(uow, ctx.principal, key_id)
    ctx.require(Role.ADMIN)
    if key.revoked_at is not None:
        return
    before = _view(key, slug)
    key.revoked_at = utcnow()
    uow.flush()
    audit.record(
        uow,
        ctx,
        action="api_key.revoke",
        target_type="api_key",
        target_id=key.id,
        tenant_id=key.tenant_id,
        before=before,
        after=_view(key, slug),
    )
    uow.commit()


def _tenant_slugs(uow: UnitOfWork, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    return dict(uow.session.execute(select(Tenant.id, Tenant.slug).where(Tenant.id.in_(ids))).all())
