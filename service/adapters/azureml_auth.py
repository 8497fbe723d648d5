"""azureml-core authentication fed by an azure-core `TokenCredential`.

azureml-core's own authentication classes either open a browser, read the az CLI cache, or call
msal with instance discovery against the public cloud, so none can be pointed at another
authority. This class takes ARM tokens from the same credential every other adapter uses, and can
replace the Resource Manager endpoint (on a private copy of its cloud definition) so the SDK talks
to the local emulator; every later URL comes from the server's answers (discoveryUrl, discovery
map, Operation-Location).

azureml-core imports in ~0.5 s, so it is imported on first use only:
`token_credential_authentication(...)`, or `TokenCredentialAuthentication` from this module.
"""

from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from service.ports import TokenCredential

ARM_SCOPE = "https://management.azure.com/.default"
DEFAULT_CLOUD = "AzureCloud"


class SubscriptionInfo(NamedTuple):
    """What azureml-core expects from `_get_all_subscription_ids` (name, id)."""

    subscription_name: str
    subscription_id: str


def token_credential_authentication(
    credential: TokenCredential,
    *,
    resource_manager_url: str | None = None,
    cloud: str = DEFAULT_CLOUD,
    scope: str = ARM_SCOPE,
) -> Any:
    """Build an azureml-core `AbstractAuthentication` that gets ARM tokens from `credential`.

    `resource_manager_url` replaces the cloud's Resource Manager endpoint (e.g. the emulator URL).
    `cloud` must name a built-in azureml cloud; passing it avoids a metadata download.
    """
    cls = _authentication_class()
    return cls(credential, resource_manager_url=resource_manager_url, cloud=cloud, scope=scope)


@functools.cache
def _authentication_class() -> type[Any]:
    from azureml.core.authentication import AbstractAuthentication
    from azureml.exceptions import AuthenticationException

    class TokenCredentialAuthentication(AbstractAuthentication):  # type: ignore[misc]
        """An azureml-core authentication backed by an azure-core TokenCredential."""

        _cloud_type: Any  # azureml's Cloud object, set by AbstractAuthentication.__init__

        def __init__(
            self,
            credential: TokenCredential,
            *,
            resource_manager_url: str | None = None,
            cloud: str = DEFAULT_CLOUD,
            scope: str = ARM_SCOPE,
        ) -> None:
            super().__init__(cloud)
            self._credential = credential
            self._scope = scope
            if resource_manager_url:
                # The cloud object is shared by every auth object of that cloud: change a copy.
                cloud_type = copy.deepcopy(self._cloud_type)
                cloud_type.endpoints.resource_manager = resource_manager_url.rstrip("/") + "/"
                self._cloud_type = cloud_type

        def _get_arm_token(self) -> str:
            return self._credential.get_token(self._scope).token

        def _get_graph_token(self) -> str:
            raise AuthenticationException(
                "Graph tokens are not available from a TokenCredential adapter."
            )

        def _get_azureml_client_token(self) -> str:
            return self._get_arm_token()

        def _get_all_subscription_ids(self) -> tuple[list[SubscriptionInfo], str]:
            import jwt
            from azure.mgmt.resource import SubscriptionClient

            from service.adapters.tenant_credentials import sdk_credential

            token = self._get_arm_token()
            tenant_id = str(jwt.decode(token, options={"verify_signature": False})["tid"])
            client = SubscriptionClient(
                sdk_credential(self._credential),
                base_url=self._cloud_type.endpoints.resource_manager,
                credential_scopes=[self._scope],
            )
            with client:
                subscriptions = [
                    SubscriptionInfo(s.display_name or "", s.subscription_id or "")
                    for s in client.subscriptions.list()
                ]
            return subscriptions, tenant_id

        def _get_workspace(self, subscription_id: str, resource_group: str, name: str) -> None:
            # None tells azureml-core to read the workspace from Resource Manager.
            return None

    return TokenCredentialAuthentication


def __getattr__(name: str) -> Any:
    # `from service.adapters.azureml_auth import TokenCredentialAuthentication` builds the class
    # (and imports azureml-core) only when it is actually asked for.
    if name == "TokenCredentialAuthentication":
        return _authentication_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
