"""The emulator's token service: RS256 access and id tokens, their JWKS, bearer verification.

Kept apart from the resource registry (`emulator.state`): the state holds one `TokenSigner` per
emulator instance, Entra's endpoints issue through it and the server's middleware verifies with it.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ARM_AUDIENCES = frozenset({"https://management.azure.com", "https://management.core.windows.net"})
LOG_ANALYTICS_AUDIENCE = "https://api.loganalytics.io"
_TOKEN_CACHE_MAX = 4096


@dataclass(frozen=True)
class Identity:
    """The principal behind a verified bearer token."""

    tenant_id: str
    object_id: str
    client_id: str
    kind: Literal["app", "user"]
    audience: str
    username: str | None = None

    @property
    def key(self) -> str:
        """Stable per-principal key (tenant/object id), e.g. for per-identity limits."""
        return f"{self.tenant_id}/{self.object_id}"


class Person(Protocol):
    """What a user token says about its user (`emulator.state.User` has it)."""

    @property
    def username(self) -> str: ...

    @property
    def object_id(self) -> str: ...

    @property
    def display_name(self) -> str: ...


def issuer(base_url: str, tenant_id: str) -> str:
    """The v2.0 token issuer of a tenant on the emulator at `base_url`."""
    return f"{base_url}/{tenant_id}/v2.0"


@functools.cache
def _process_signing_key() -> rsa.RSAPrivateKey:
    # RSA generation costs ~0.1 s; states in one process share the key but not the `kid`, and
    # verification checks the kid, so tokens never cross emulator instances.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class TokenSigner:
    """Issues and verifies the emulator's RS256 access and id tokens."""

    def __init__(self) -> None:
        self.kid = secrets.token_hex(8)
        self._key = _process_signing_key()
        self._public = self._key.public_key()
        self._cache: dict[str, tuple[Identity, float]] = {}
        self._lock = threading.Lock()

    def sign(self, claims: dict[str, Any]) -> str:
        """Sign claims with the emulator key."""
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set served at /discovery/v2.0/keys."""
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self._public, as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def access_token(
        self,
        issuer_url: str,
        tenant_id: str,
        *,
        object_id: str,
        client_id: str,
        audience: str,
        lifetime_s: int,
        user: Person | None = None,
        scopes: list[str] | None = None,
    ) -> str:
        """Sign an access token for an app (client credentials) or a user (delegated)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": issuer_url,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_s,
            "tid": tenant_id,
            "oid": object_id,
            "sub": object_id,
            "appid": client_id,
            "azp": client_id,
            "idtyp": "user" if user else "app",
            "ver": "2.0",
            "uti": secrets.token_urlsafe(12),
        }
        if user:
            claims.update(
                upn=user.username,
                preferred_username=user.username,
                name=user.display_name,
                scp=" ".join(scopes or []),
            )
        return self.sign(claims)

    def id_token(
        self, issuer_url: str, tenant_id: str, client_id: str, user: Person, lifetime_s: int
    ) -> str:
        """Sign an OpenID Connect id token for a signed-in user."""
        now = int(time.time())
        claims = {
            "aud": client_id,
            "iss": issuer_url,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_s,
            "tid": tenant_id,
            "oid": user.object_id,
            "sub": user.object_id,
            "preferred_username": user.username,
            "name": user.display_name,
            "ver": "2.0",
        }
        return self.sign(claims)

    def verify_bearer(
        self, authorization: str | None, audiences: frozenset[str]
    ) -> Identity | None:
        """Identity for an `Authorization: Bearer <jwt>` header value, or None if invalid."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        return self.verify(authorization[7:].strip(), audiences)

    def verify(self, token: str, audiences: frozenset[str]) -> Identity | None:
        """Return the identity of a valid, unexpired token for one of `audiences`, else None."""
        now = time.time()
        with self._lock:
            hit = self._cache.get(token)
        if hit is not None:
            identity, exp = hit
            return identity if exp > now and identity.audience in audiences else None
        try:
            if jwt.get_unverified_header(token).get("kid") != self.kid:
                return None
            claims = jwt.decode(
                token, self._public, algorithms=["RS256"], options={"verify_aud": False}
            )
        except jwt.PyJWTError:
            return None
        identity = Identity(
            tenant_id=claims["tid"],
            object_id=claims["oid"],
            client_id=claims["appid"],
            kind="user" if claims.get("idtyp") == "user" else "app",
            audience=str(claims["aud"]).rstrip("/"),
            username=claims.get("upn"),
        )
        with self._lock:
            if len(self._cache) >= _TOKEN_CACHE_MAX:
                self._cache.clear()
            self._cache[token] = (identity, float(claims["exp"]))
        return identity if identity.audience in audiences else None
