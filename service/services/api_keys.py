"""API keys: random secrets shown once, stored as hashes; roles and tenant binding."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from service.db.models import ApiKey, Tenant
from service.db.session import UnitOfWork
from service.db.types import utcnow
from service.domain.access import Principal, Role
from service.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from service.ports import RevocationFeed
from service.services import audit
from service.services.access_cache import AccessCache
from service.services.context import CallContext
from service.services.lookup import visible_tenant
from service.services.pagination import Page, PageRequest, paginate

if TYPE_CHECKING:  # runtime -> api_keys (KeyCache): the type only, no import cycle
    from service.services.runtime import Runtime

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
    return _lookup(uow, hash_key(secret, pepper), utcnow())[0]


class KeyCache(AccessCache):
    """The process's :class:`AccessCache`, which also answers API-key look-ups from memory.

    A key's entry is reused for at most ``API_KEY_CACHE_TTL_S`` while the deployment's access
    counter stands still; revoking or deleting a key bumps it after the commit, so every
    process refuses the key at its next request. Expiry is checked on every use. Unknown keys
    are never cached: a new key works at once.
    """

    def __init__(
        self,
        *,
        revocations: RevocationFeed | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utcnow,  # for the keys' expiry
    ) -> None:
        super().__init__(revocations=revocations, clock=clock)
        self._wall_clock = wall_clock

    def authenticate(
        self,
        uow_factory: Callable[[], UnitOfWork],
        secret: str,
        pepper: bytes,
        ttl_s: float,
        *,
        scope: str = "",
    ) -> Principal:
        """Like :func:`authenticate`, answering from memory while the entry is fresh."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
            raise Unauthorized("invalid API key")
        digest = hash_key(secret, pepper)

        def load() -> tuple[Principal, datetime | None]:
            with uow_factory() as uow:
                return _lookup(uow, digest, self._wall_clock())

        found = self.remember(("api-key", scope, digest), ttl_s, load)
        assert found is not None  # _lookup raises for an unknown key
        principal, expires_at = found
        if expires_at is not None and expires_at <= self._wall_clock():
            raise Unauthorized("invalid, expired or revoked API key")
        return principal


def _lookup(uow: UnitOfWork, digest: str, now: datetime) -> tuple[Principal, datetime | None]:
    row = uow.session.execute(
        select(
            ApiKey.id, ApiKey.role, ApiKey.tenant_id, ApiKey.revoked_at, ApiKey.expires_at
        ).where(ApiKey.key_hash == digest)
    ).first()
    if (
        row is None
        or row.revoked_at is not None
        or (row.expires_at is not None and row.expires_at <= now)
    ):
        raise Unauthorized("invalid, expired or revoked API key")
    principal = Principal(key_id=row.id, role=Role.parse(row.role), tenant_id=row.tenant_id)
    return principal, row.expires_at


def create_api_key(rt: Runtime, ctx: CallContext, data: dict[str, Any]) -> CreatedApiKey:
    """Create a key. Admins only; a tenant-bound admin can only mint keys for its own tenant."""
    with rt.uow() as uow:
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
            key_hash=hash_key(secret, rt.settings.api_key_pepper),
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


def get_api_key(rt: Runtime, ctx: CallContext, key_id: str) -> ApiKeyView:
    with rt.uow(read_only=True) as uow:
        found = _visible_key(uow, ctx.principal, key_id)
        ctx.require(Role.ADMIN)
        return _view(*found)


def whoami(rt: Runtime, ctx: CallContext) -> ApiKeyView:
    """The caller's own key (any role): what a console or portal needs to show only what works."""
    with rt.uow(read_only=True) as uow:
        ctx.require(Role.READER)
        return _view(*_visible_key(uow, ctx.principal, ctx.principal.key_id))


def list_api_keys(
    rt: Runtime, ctx: CallContext, page: PageRequest, *, tenant: str | None = None
) -> Page[ApiKeyView]:
    with rt.uow(read_only=True) as uow:
        stmt = select(ApiKey)
        if tenant is not None:
            stmt = stmt.where(ApiKey.tenant_id == visible_tenant(uow, ctx.principal, tenant).id)
        elif ctx.principal.tenant_id is not None:
            stmt = stmt.where(ApiKey.tenant_id == ctx.principal.tenant_id)
        ctx.require(Role.ADMIN)
        rows, cursor = paginate(uow.session, stmt, ApiKey.id, page)
        slugs = _tenant_slugs(uow, {k.tenant_id for k in rows if k.tenant_id})
        return Page([_view(k, slugs.get(k.tenant_id or "")) for k in rows], cursor)


def revoke_api_key(rt: Runtime, ctx: CallContext, key_id: str) -> None:
    """Revoke (idempotent): the key stops working at once in every process (the runtime's
    key cache announces it); the record stays for the audit trail."""
    with rt.uow() as uow:
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
        rt.access_cache.forget_all()


def _tenant_slugs(uow: UnitOfWork, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    return dict(uow.session.execute(select(Tenant.id, Tenant.slug).where(Tenant.id.in_(ids))).all())
