"""The credentials handed to the adapters: each tenant's credential bound to its Entra tenant,
the host's own identity, and the cast from the ports' structural credential to the SDKs' type."""

from __future__ import annotations

import logging
from typing import Any, cast

import jwt
from azure.core.credentials import AccessToken
from azure.core.credentials import TokenCredential as SdkTokenCredential
from azure.identity import CredentialUnavailableError, DefaultAzureCredential

from service.adapters.client_cache import close_quietly
from service.errors import WrongTenantToken
from service.ports import TokenCredential

log = logging.getLogger(__name__)


def sdk_credential(credential: TokenCredential) -> SdkTokenCredential:
    """The ports' credential as the Azure SDKs type it: the same protocol, restated in
    ``service.ports`` without importing azure (its ``AccessToken`` is azure-core's)."""
    return cast(SdkTokenCredential, credential)


def token_tenant(token: str) -> str | None:
    """The ``tid`` claim of an access token (read without verification: Azure verifies it)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    tid = claims.get("tid") if isinstance(claims, dict) else None
    return str(tid).lower() if tid else None


class TenantBoundCredential:
    """Hands out a token only when it was issued for the tenant's registered Entra tenant.

    Wraps every tenant credential (service principal, delegated, host identity): a token whose
    ``tid`` differs (or that carries none) is never returned, so no Azure call is made with it.

    A token is decoded once: the SDKs ask for one before every call and get the same cached
    token until it is refreshed (decoding it each time was ~6% of the reconciler's CPU under a
    profiler, yappi; whole runs of bench/reconcile_converge could not tell the difference). The
    tokens already found to be the tenant's are remembered (a few: one per scope).
    """

    REMEMBERED = 8

    def __init__(self, inner: SdkTokenCredential, entra_tenant_id: str) -> None:
        self._inner = inner
        self._tenant = entra_tenant_id.lower()
        self._accepted: set[str] = set()

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token: AccessToken = self._inner.get_token(*scopes, **kwargs)
        if token.token in self._accepted:
            return token
        issued_for = token_tenant(token.token)
        if issued_for != self._tenant:
            log.warning(
                "refused a token issued for Entra tenant %s (expected %s)",
                issued_for or "unknown",
                self._tenant,
            )
            raise WrongTenantToken(
                f"the credential obtained a token for Entra tenant '{issued_for or 'unknown'}', "
                f"not for this tenant's '{self._tenant}': it was not used"
            )
        accepted = self._accepted
        if len(accepted) >= self.REMEMBERED:  # refreshed tokens replace the old ones
            accepted = set()
        accepted.add(token.token)
        self._accepted = accepted  # one assignment: threads see the old set or the new one
        return token

    def close(self) -> None:
        close_quietly(self._inner)


class HostIdentity:
    """DefaultAzureCredential's chain, walked here so that its outcomes stay distinct.

    DefaultAzureCredential folds "no identity on this host" and "Entra refused the identity"
    into one ClientAuthenticationError; walking its credentials keeps Entra's own error (mapped
    with its AADSTS code) and raises CredentialUnavailableError only when none is available.
    """

    def __init__(self, chain: DefaultAzureCredential) -> None:
        self._chain = chain
        self._chosen: SdkTokenCredential | None = None

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        if self._chosen is not None:
            return self._chosen.get_token(*scopes, **kwargs)
        for credential in list[Any](self._chain.credentials):
            try:
                token: AccessToken = credential.get_token(*scopes, **kwargs)
            except CredentialUnavailableError:
                continue
            self._chosen = credential
            return token
        raise CredentialUnavailableError(message="no Azure identity is available on this host")

    def close(self) -> None:
        close_quietly(self._chain)
