"""The tenants' Azure credentials in use: the TokenCredential the adapters get, and rotating
the keys their secrets are encrypted with.

Configuring a credential (the admin's use cases) is ``credentials``; secrets are decrypted only
here, into the :class:`CredentialSpec` the identity adapter builds the credential from.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, update

from service.db.models import DeviceLogin, Tenant, TenantCredential, Workspace
from service.db.session import UnitOfWork
from service.domain.states import CredentialKind, CredentialMethod
from service.errors import CredentialMissing, HostIdentityNotAllowed, LoginRequired, NotFound
from service.ports import CredentialSpec
from service.services.runtime import Runtime
from service.services.token_cache import DbTokenCacheStore


def credential_of(uow: UnitOfWork, tenant: Tenant) -> TenantCredential:
    cred = uow.session.scalar(
        select(TenantCredential).where(TenantCredential.tenant_id == tenant.id)
    )
    if cred is None:
        raise _missing(tenant)
    return cred


def _missing(tenant: Tenant) -> CredentialMissing:
    return CredentialMissing(f"tenant '{tenant.slug}' has no Azure credential configured")


def host_identity_allowed(rt: Runtime, tenant: Tenant) -> None:
    if tenant.slug not in rt.settings.host_identity_tenants:
        raise HostIdentityNotAllowed(
            f"tenant '{tenant.slug}' may not use the service's host identity "
            "(it is not listed in HOST_IDENTITY_TENANTS)"
        )


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
        with rt.uow(read_only=True) as uow:
            spec = stored_credential_spec(rt, uow, tenant_id)
        return fresh_credential(rt, spec)
    return rt.credential_memo.get(tenant_id, lambda: _load_credential(rt, tenant_id))


def stored_credential_spec(rt: Runtime, uow: UnitOfWork, tenant_id: str) -> CredentialSpec:
    """The tenant's credential as stored now, read in the caller's unit of work (an attempt
    reads its workspace and policies in the same transaction)."""
    tenant = uow.session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant not found")
    return _usable_spec(rt, tenant, credential_of(uow, tenant))


# Built once (see PolicyIndex.load): read for every claim.
_WORKSPACE_CREDENTIAL = (
    select(Workspace, Tenant, TenantCredential)
    .join(Tenant, Tenant.id == Workspace.tenant_id)
    .outerjoin(TenantCredential, TenantCredential.tenant_id == Tenant.id)
    .where(Workspace.id == bindparam("workspace_id"))
)


def workspace_credential_spec(
    rt: Runtime, uow: UnitOfWork, workspace_id: str
) -> tuple[Workspace, CredentialSpec] | None:
    """A workspace and its tenant's credential as stored now, in one statement (an attempt
    reads them for every claim: three statements were a visible share of its database work);
    None when the workspace is gone. Raises as ``stored_credential_spec``."""
    row = uow.session.execute(_WORKSPACE_CREDENTIAL, {"workspace_id": workspace_id}).first()
    if row is None:
        return None
    ws, tenant, cred = row
    if cred is None:
        raise _missing(tenant)
    return ws, _usable_spec(rt, tenant, cred)


def _usable_spec(rt: Runtime, tenant: Tenant, cred: TenantCredential) -> CredentialSpec:
    if cred.kind == CredentialKind.DELEGATED and cred.token_cache_ciphertext is None:
        raise LoginRequired("no user has signed in for this tenant yet")
    return credential_spec(rt, tenant, cred)


def fresh_credential(rt: Runtime, spec: CredentialSpec) -> Any:
    """The TokenCredential of a spec just read (built outside any transaction: building one
    may call Entra), memoised for the callers that accept a memo."""
    credential = rt.identity.credential(spec)
    rt.credential_memo.put(spec.tenant_key, credential)
    return credential


def _load_credential(rt: Runtime, tenant_id: str) -> Any:
    with rt.uow(read_only=True) as uow:
        spec = stored_credential_spec(rt, uow, tenant_id)
    return rt.identity.credential(spec)


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
    with rt.uow(read_only=True) as uow:
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
