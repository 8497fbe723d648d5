"""A delegated (signed-in user) TokenCredential: msal with its cache in our database.

azure-identity's DeviceCodeCredential cannot keep its cache in a database (its persistence needs
libsecret or writes refresh tokens in plain text), so this wraps msal's PublicClientApplication
with a ``SerializableTokenCache`` loaded from, and written back to, a ``TokenCacheStore``.

When several processes share one tenant's cache, one refreshes at a time: it takes the store's
refresh lease (a short committed write, not a lock held open), calls Entra with no database
transaction open, and stores the result with a compare-and-swap on the cache version. The others
wait for the version to move on and use what it stored, so a refresh token rotated by one process
is never overwritten by an older copy, and no row lock is held across network I/O.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import msal
import requests
from azure.core.credentials import AccessToken

from service.ports import TokenCacheStore

log = logging.getLogger(__name__)

# Tokens this close to expiry are refreshed rather than handed out.
_EXPIRY_MARGIN_S = 300
# The refresh lease outlasts one Entra call (msal's session enforces a 10 s + 30 s deadline).
REFRESH_LEASE_S = 60.0
# How often a process waiting for another's refresh looks at the stored version.
_WAIT_POLL_S = 0.1


_LOGIN_ERRORS = frozenset(
    {"invalid_grant", "interaction_required", "login_required", "consent_required"}
)


class TokenRefreshFailed(Exception):
    """Entra failed to refresh for a reason worth retrying (server error, throttling)."""


class LoginRequiredError(Exception):
    """The cache holds no usable refresh token: an admin must sign in again.

    Deliberately not a ClientAuthenticationError: azure-monitor-query would turn that into a bare
    HttpResponseError and the reason would be lost.
    """


class DelegatedCredential:
    """An azure-core TokenCredential for a user who signed in once through the device-code flow."""

    def __init__(
        self,
        *,
        authority: str,
        client_id: str,
        store: TokenCacheStore,
        instance_discovery: bool,
        http_client: requests.Session,
    ) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._cache = msal.SerializableTokenCache()
        self._version = -1
        self._app = msal.PublicClientApplication(
            client_id,
            authority=authority,
            token_cache=self._cache,
            instance_discovery=instance_discovery,
            http_client=http_client,
        )

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        if not scopes:
            raise ValueError("at least one scope is required")
        wanted = list(scopes)
        with self._lock:  # one refresh per process; never a database lock
            if self._version < 0:
                self._load(*self._store.load())
            cached = self._cached_token(wanted)
            if cached is not None:
                return cached
            version = self._claim(wanted)
            if isinstance(version, AccessToken):
                return version  # another process refreshed meanwhile
            stored = False
            try:
                result = self._acquire_silent(wanted, claims)
                if self._cache.has_state_changed:
                    new_version = self._store.store(version, str(self._cache.serialize()))
                    stored = True
                    if new_version is None:
                        # The cache moved on without us (a new sign-in, or our lease ran out and
                        # another process refreshed): take what is stored, drop our copy.
                        self._load(*self._store.load())
                    else:
                        self._version = new_version
            finally:
                if not stored:
                    self._store.release(version)
                self._cache.has_state_changed = False
        if result and "access_token" in result:
            expires_in = int(result.get("expires_in", 3600))
            return AccessToken(result["access_token"], int(time.time()) + expires_in)
        if result and result.get("error") not in _LOGIN_ERRORS:
            raise TokenRefreshFailed(f"token refresh failed: {result.get('error')}")
        raise LoginRequiredError(_login_required_reason(result))

    def _claim(self, scopes: list[str]) -> int | AccessToken:
        """Hold the refresh lease for the current version, or a token another process stored.

        Waits (polling, no lock) while another process holds the lease, at most one lease long.
        """
        deadline = time.monotonic() + REFRESH_LEASE_S + 5
        while True:
            serialized, version = self._store.load()
            if version != self._version:
                self._load(serialized, version)  # another process refreshed meanwhile
                token = self._cached_token(scopes)
                if token is not None:
                    return token
            if self._store.claim_refresh(version, REFRESH_LEASE_S):
                return version
            if time.monotonic() >= deadline:
                raise TokenRefreshFailed("another process has been refreshing for too long")
            time.sleep(_WAIT_POLL_S)

    def close(self) -> None:
        """Nothing to release; present for symmetry with azure-identity credentials."""

    def _load(self, serialized: str | None, version: int) -> None:
        self._cache.deserialize(serialized or "{}")
        self._cache.has_state_changed = False
        self._version = version

    def _cached_token(self, scopes: list[str]) -> AccessToken | None:
        """An access token from memory that is valid for a while yet (no network, no lock)."""
        now = time.time()
        for entry in self._cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN, target=scopes):
            expires_on = int(entry.get("expires_on", 0))
            if expires_on - _EXPIRY_MARGIN_S > now:
                return AccessToken(entry["secret"], expires_on)
        return None

    def _acquire_silent(self, scopes: list[str], claims: str | None) -> dict[str, Any] | None:
        accounts = self._app.get_accounts()
        if not accounts:
            return None
        result: dict[str, Any] | None = self._app.acquire_token_silent_with_error(
            scopes, account=accounts[0], claims_challenge=claims
        )
        return result


def _login_required_reason(result: dict[str, Any] | None) -> str:
    if not result:
        return "no signed-in user: start a device-code sign-in"
    error = result.get("error", "")
    if error == "invalid_grant":
        return "the sign-in expired or was revoked: sign in again"
    return f"silent token refresh failed ({error or 'unknown error'}): sign in again"
