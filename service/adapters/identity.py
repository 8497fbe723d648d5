"""Azure identity for tenants: one TokenCredential per tenant, device-code sign-in, verification.

Service principals use azure-identity's ClientSecretCredential / CertificateCredential;
delegated tenants use msal directly with the token cache kept (encrypted) in our database (see
``delegated.py``); the host identity is DefaultAzureCredential (``tenant_credentials.py``, which
also binds every credential to its Entra tenant). Failures map to the service's error model in
``identity_errors.py``. Device-code sign-ins and certificate checks live here.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import jwt
import msal
import requests
from azure.core.credentials import TokenCredential as SdkTokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import (
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from service.adapters.client_cache import close_quietly
from service.adapters.delegated import DelegatedCredential
from service.adapters.identity_errors import map_identity_error
from service.adapters.tenant_credentials import HostIdentity, TenantBoundCredential
from service.adapters.trust import ca_location
from service.config import AzureSettings
from service.errors import (
    AzureUnavailable,
    CredentialRejected,
    ServiceError,
)
from service.ports import (
    AccessTokenInfo,
    CertificateInfo,
    CredentialSpec,
    DeviceFlow,
    DevicePoll,
)

log = logging.getLogger(__name__)

ARM_SCOPE = "https://management.azure.com/.default"
_UNKNOWN_AUTHORITY = "Entra ID refused the sign-in authority: is the tenant id right?"
# Device-code sign-ins ask for ARM; other resources (Log Analytics) come from the refresh token.
DEVICE_FLOW_SCOPES = ["https://management.azure.com/user_impersonation"]


# Every call to Entra (msal) gets a deadline: connect, then read.
MSAL_TIMEOUT_S = (10.0, 30.0)
# ARM subscription look-ups (workspace registration).
ARM_CONNECT_TIMEOUT_S = 10
ARM_READ_TIMEOUT_S = 30


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    """An adapter that enforces a timeout on every request sent through its session.

    msal hands its own ``timeout`` to a session only when the app is built with one, and a
    caller's session never inherits it: without this, a stalled Entra pins the thread forever.
    """

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self.deadline = timeout

    def send(  # type: ignore[override]
        self, request: Any, stream: bool = False, timeout: Any = None, **kwargs: Any
    ) -> requests.Response:
        return super().send(request, stream=stream, timeout=timeout or self.deadline, **kwargs)


def msal_http_client(
    ca_bundle: str | None, timeout: tuple[float, float] | None = None
) -> requests.Session:
    """msal's HTTP session: a deadline on every call; trusts ``ca_location(ca_bundle)``; with an
    explicit CA bundle, ignores REQUESTS_CA_BUNDLE & co."""
    session = requests.Session()
    adapter = _DeadlineAdapter(timeout or MSAL_TIMEOUT_S)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = ca_location(ca_bundle)
    if ca_bundle:
        session.trust_env = False
    return session


class AzureIdentity:
    """Implements ``service.ports.IdentityProvider``."""

    def __init__(self, settings: AzureSettings) -> None:
        self._settings = settings
        self._verify = ca_location(settings.ca_bundle)  # built here: Lazy builds adapters once
        self._lock = threading.Lock()
        self._credentials: dict[str, tuple[str, TenantBoundCredential]] = {}

    # -- credentials ---------------------------------------------------------------------------
    def credential(self, spec: CredentialSpec) -> TenantBoundCredential:
        with self._lock:
            cached = self._credentials.get(spec.tenant_key)
            if cached is not None and cached[0] == spec.fingerprint:
                return cached[1]
            credential = TenantBoundCredential(self._build(spec), spec.entra_tenant_id)
            self._credentials[spec.tenant_key] = (spec.fingerprint, credential)
        if cached is not None:
            close_quietly(cached[1])
        return credential

    def close(self) -> None:
        """Close every credential built here (their token clients hold connection pools)."""
        with self._lock:
            cached = list(self._credentials.values())
            self._credentials.clear()
        close_quietly(*(credential for _, credential in cached))

    def forget(self, tenant_key: str) -> None:
        with self._lock:
            cached = self._credentials.pop(tenant_key, None)
        if cached is not None:
            close_quietly(cached[1])

    def _common(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "authority": self._settings.authority_host,
            "disable_instance_discovery": not self._settings.instance_discovery,
            # azure-identity's transport waits 300 s per read by default: Entra gets the same
            # deadline as every msal call.
            "connection_timeout": MSAL_TIMEOUT_S[0],
            "read_timeout": MSAL_TIMEOUT_S[1],
        }
        options["connection_verify"] = self._verify
        return options

    def _build(self, spec: CredentialSpec) -> SdkTokenCredential:
        if spec.kind == "service_principal":
            assert spec.client_id is not None
            if spec.certificate_pem is not None:
                return CertificateCredential(
                    spec.entra_tenant_id,
                    spec.client_id,
                    certificate_data=spec.certificate_pem,
                    **self._common(),
                )
            assert spec.client_secret is not None
            return ClientSecretCredential(
                spec.entra_tenant_id, spec.client_id, spec.client_secret, **self._common()
            )
        if spec.kind == "delegated":
            assert spec.client_id is not None
            assert spec.cache_store is not None
            return DelegatedCredential(
                authority=f"{self._settings.authority_host}/{spec.entra_tenant_id}",
                client_id=spec.client_id,
                store=spec.cache_store,
                instance_discovery=self._settings.instance_discovery,
                http_client=msal_http_client(self._settings.ca_bundle),
            )
        if spec.kind == "host_identity":
            options = self._common()
            if spec.client_id:
                options["managed_identity_client_id"] = spec.client_id
            # A server's ambient identity is the environment, workload identity or managed
            # identity; developer-tool credentials (az CLI, PowerShell, VS Code, shared cache)
            # would spawn processes or read a person's files, so they are never tried.
            return HostIdentity(
                DefaultAzureCredential(
                    exclude_managed_identity_credential=not self._settings.managed_identity,
                    exclude_shared_token_cache_credential=True,
                    exclude_cli_credential=True,
                    exclude_powershell_credential=True,
                    exclude_developer_cli_credential=True,
                    exclude_visual_studio_code_credential=True,
                    exclude_interactive_browser_credential=True,
                    exclude_broker_credential=True,
                    **options,
                )
            )
        raise ValueError(f"unknown credential kind {spec.kind!r}")

    # -- verification --------------------------------------------------------------------------
    def verify(self, spec: CredentialSpec) -> AccessTokenInfo:
        credential = self.credential(spec)
        try:
            token = credential.get_token(ARM_SCOPE)
        except Exception as exc:  # noqa: BLE001 - every failure is mapped to the error model
            raise map_identity_error(exc) from None
        return AccessTokenInfo(
            expires_on=datetime.fromtimestamp(token.expires_on, UTC),
            identity=_claims_identity(token.token),
        )

    # -- subscriptions -------------------------------------------------------------------------
    def subscription_tenant(self, spec: CredentialSpec, subscription_id: str) -> str | None:
        """The Entra tenant ARM gives for the subscription, among those the tenant's credential
        can list; None when the credential cannot reach it.

        Listing (``GET /subscriptions``) rather than reading the one subscription means that no
        request ever names a subscription the credential does not already reach.
        """
        from azure.mgmt.resource import SubscriptionClient

        credential = self.credential(spec)
        try:
            credential.get_token(ARM_SCOPE)  # credential failures are the credential's, not ARM's
        except Exception as exc:  # noqa: BLE001 - every failure is mapped to the error model
            raise map_identity_error(exc) from None
        options: dict[str, Any] = {
            "base_url": self._settings.resource_manager,
            "credential_scopes": [ARM_SCOPE],
            "retry_total": 1,
            "connection_timeout": ARM_CONNECT_TIMEOUT_S,
            "read_timeout": ARM_READ_TIMEOUT_S,
        }
        options["connection_verify"] = self._verify
        wanted = subscription_id.lower()
        try:
            with SubscriptionClient(credential, **options) as client:
                for subscription in client.subscriptions.list():
                    if (subscription.subscription_id or "").lower() == wanted:
                        return str(subscription.tenant_id or "").lower()
        except ServiceError:
            raise
        except HttpResponseError as exc:
            status = exc.status_code or 0
            if status == 429 or status >= 500:
                raise AzureUnavailable(f"Resource Manager answered {status}") from None
            code = getattr(getattr(exc, "error", None), "code", None) or f"HTTP {status}"
            raise CredentialRejected(
                f"Resource Manager refused the tenant's credential ({code})"
            ) from None
        except (ServiceRequestError, ServiceResponseError, OSError) as exc:
            raise AzureUnavailable(f"Resource Manager unreachable ({type(exc).__name__})") from None
        return None

    # -- device code ---------------------------------------------------------------------------
    def _public_app(
        self, entra_tenant_id: str, client_id: str, cache: msal.SerializableTokenCache
    ) -> msal.PublicClientApplication:
        return msal.PublicClientApplication(
            client_id,
            authority=f"{self._settings.authority_host}/{entra_tenant_id}",
            token_cache=cache,
            instance_discovery=self._settings.instance_discovery,
            http_client=msal_http_client(self._settings.ca_bundle),
        )

    def start_device_flow(self, entra_tenant_id: str, client_id: str) -> DeviceFlow:
        try:
            # msal reads the authority's OIDC metadata when the app is built: that can fail too.
            app = self._public_app(entra_tenant_id, client_id, msal.SerializableTokenCache())
            flow = app.initiate_device_flow(scopes=DEVICE_FLOW_SCOPES)
        except requests.RequestException as exc:
            raise AzureUnavailable(f"Entra ID unreachable ({type(exc).__name__})") from None
        except ValueError:
            # msal's answer to an authority whose metadata Entra refuses (e.g. unknown tenant).
            raise CredentialRejected(_UNKNOWN_AUTHORITY) from None
        if "user_code" not in flow:
            raise CredentialRejected(_entra_error(flow, "device-code sign-in refused"))
        return DeviceFlow(
            user_code=flow["user_code"],
            verification_uri=flow["verification_uri"],
            message=flow.get("message", ""),
            expires_at=datetime.fromtimestamp(float(flow["expires_at"]), UTC),
            interval_s=max(1, int(flow.get("interval", 5))),
            state=flow,
        )

    def poll_device_flow(
        self, entra_tenant_id: str, client_id: str, state: dict[str, Any]
    ) -> DevicePoll:
        if time.time() >= float(state.get("expires_at", 0)):
            return DevicePoll("expired", error="the sign-in code expired before it was used")
        # msal polls in a loop; an exit condition that is always true makes it poll exactly once
        # (it needs interval >= 1, which start_device_flow guarantees).
        flow = dict(state, interval=max(1, int(state.get("interval", 5))))
        cache = msal.SerializableTokenCache()
        try:
            app = self._public_app(entra_tenant_id, client_id, cache)
            result = app.acquire_token_by_device_flow(flow, exit_condition=lambda _flow: True)
        except requests.RequestException as exc:
            raise AzureUnavailable(f"Entra ID unreachable ({type(exc).__name__})") from None
        except ValueError:
            return DevicePoll("failed", error=_UNKNOWN_AUTHORITY)
        if "access_token" in result:
            claims = result.get("id_token_claims") or {}
            username = claims.get("preferred_username") or claims.get("upn") or claims.get("oid")
            return DevicePoll("succeeded", cache=cache.serialize(), username=username)
        error = result.get("error")
        if error in ("authorization_pending", "slow_down"):
            return DevicePoll("pending")
        if error in ("expired_token", "code_expired"):
            return DevicePoll("expired", error="the sign-in code expired before it was used")
        return DevicePoll("failed", error=_entra_error(result, "sign-in failed"))

    # -- certificates --------------------------------------------------------------------------
    def inspect_certificate(self, pem: bytes) -> CertificateInfo:
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise ValueError("no PEM certificate found") from None
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise ValueError(
                "no unencrypted PEM private key found beside the certificate"
            ) from None
        if key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise ValueError("the private key does not belong to the certificate")
        return CertificateInfo(
            thumbprint_sha1=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - x5t
            subject=cert.subject.rfc4514_string(),
            not_after=cert.not_valid_after_utc,
        )


def _entra_error(result: dict[str, Any], default: str) -> str:
    code = result.get("error")
    codes = result.get("error_codes") or []
    if code:
        suffix = f" (AADSTS{codes[0]})" if codes else ""
        return f"{default}: {code}{suffix}"
    return default


def _claims_identity(token: str) -> dict[str, str]:
    """Who the (unverified, display-only) access token names. Never the token itself."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    picked = {
        "tenant_id": claims.get("tid"),
        "object_id": claims.get("oid"),
        "app_id": claims.get("appid") or claims.get("azp"),
        "username": claims.get("upn") or claims.get("preferred_username"),
    }
    return {k: str(v) for k, v in picked.items() if v}
