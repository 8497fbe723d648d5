"""An HTTP client for API tests that checks every response against openapi.yaml."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.test import EnvironBuilder, TestResponse

from emulator.testing import EmulatorHandle
from service.app import create_app
from service.config import PROJECT_ROOT, AzureSettings, Settings
from service.db.session import Database
from service.domain.access import CLI_PRINCIPAL
from service.services import api_keys, endpoints, tenants, workspaces
from service.services.context import CallContext
from service.services.runtime import Runtime

# openapi-core only parses application/json bodies by default; without these, every problem
# response would be compared to its schema as raw bytes (and fail).
_OPENAPI = OpenAPI.from_file_path(
    str(PROJECT_ROOT / "openapi.yaml"),
    config=Config(
        extra_media_type_deserializers={
            "application/problem+json": json.loads,
            "application/yaml": yaml.safe_load,
        }
    ),
)
CLI = CallContext(CLI_PRINCIPAL)


def check_contract(response: TestResponse) -> None:
    """Fail unless the response is one the contract declares, with a conforming body."""
    sent = response.request
    # The original request's body stream is consumed; response validation needs only the route.
    replay = EnvironBuilder(
        method=sent.method,
        path=sent.path,
        query_string=sent.query_string.decode("latin-1"),
        headers=list(sent.headers.items()),
    ).get_request()
    _OPENAPI.validate_response(WerkzeugOpenAPIRequest(replay), WerkzeugOpenAPIResponse(response))


class ApiClient:
    """Wraps Flask's test client: auth by key, and contract validation of every response."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def call(
        self,
        method: str,
        path: str,
        key: str | None = None,
        *,
        validate: bool = True,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> TestResponse:
        all_headers = dict(headers or {})
        if key is not None:
            all_headers["Authorization"] = f"Bearer {key}"
        # Buffered: the answer is read to its end and closed before the call returns, as a WSGI
        # server does; an unread streamed answer would otherwise end (and write its audit event)
        # whenever the garbage collector reaches it, inside some later test.
        kwargs.setdefault("buffered", True)
        response = self.client.open(path, method=method, headers=all_headers, **kwargs)
        if validate:
            check_contract(response)
        return response

    def get(self, path: str, key: str | None = None, **kw: Any) -> TestResponse:
        return self.call("GET", path, key, **kw)

    def post(self, path: str, key: str | None = None, **kw: Any) -> TestResponse:
        return self.call("POST", path, key, **kw)

    def put(self, path: str, key: str | None = None, **kw: Any) -> TestResponse:
        return self.call("PUT", path, key, **kw)

    def patch(self, path: str, key: str | None = None, **kw: Any) -> TestResponse:
        return self.call("PATCH", path, key, **kw)

    def delete(self, path: str, key: str | None = None, **kw: Any) -> TestResponse:
        return self.call("DELETE", path, key, **kw)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_guid() -> str:
    return str(uuid.uuid4())


@dataclass
class World:
    """Builds test data through the use cases (as the CLI would), each object uniquely named."""

    rt: Runtime

    @property
    def db(self) -> Database:
        return self.rt.database

    def key(self, role: str = "admin", tenant: str | None = None) -> str:
        created = api_keys.create_api_key(
            self.rt, CLI, {"name": unique("key"), "role": role, "tenant": tenant}
        )
        return created.secret

    def tenant(self, **overrides: Any) -> str:
        data = {
            "slug": unique("t"),
            "display_name": "Test tenant",
            "entra_tenant_id": new_guid(),
            **overrides,
        }
        return tenants.create_tenant(self.rt, CLI, data).slug

    def azure_tenant(self, box: Any, **overrides: Any) -> str:
        """A tenant for an emulator sandbox's Entra tenant, with its service principal stored as
        the credential: it can register workspaces in ``box.subscription_id``."""
        from sqlalchemy import select

        from service.adapters.secretbox import FernetSecretBox
        from service.db.models import Tenant, TenantCredential

        slug = self.tenant(entra_tenant_id=box.tenant_id, **overrides)
        box_of_keys = FernetSecretBox((TEST_CREDENTIAL_KEY,))
        with self.db.unit_of_work() as uow:
            t = uow.session.scalars(select(Tenant).where(Tenant.slug == slug)).one()
            uow.session.add(
                TenantCredential(
                    tenant_id=t.id,
                    kind="service_principal",
                    method="secret",
                    client_id=box.client_id,
                    secret_ciphertext=box_of_keys.encrypt(box.client_secret.encode()),
                    status="unverified",
                )
            )
            uow.commit()
        return slug

    def workspace(self, tenant: str, **overrides: Any) -> str:
        data = {
            "slug": unique("w"),
            "subscription_id": new_guid(),
            "resource_group": "rg-ml",
            "workspace_name": unique("mlw")[:30],
            **overrides,
        }
        return workspaces.create_workspace(self.rt, CLI, tenant, data).slug

    def delegated_credential(self, tenant: str, client_id: str | None = None) -> str:
        """A delegated credential (no one signed in) and one finished device login; its id."""
        from datetime import timedelta

        from sqlalchemy import select

        from service.db.models import DeviceLogin, Tenant, TenantCredential
        from service.db.types import utcnow

        with self.db.unit_of_work() as uow:
            t = uow.session.scalars(select(Tenant).where(Tenant.slug == tenant)).one()
            uow.session.add(
                TenantCredential(
                    tenant_id=t.id,
                    kind="delegated",
                    method="device_code",
                    client_id=client_id or new_guid(),
                    status="login_required",
                )
            )
            now = utcnow()
            login = DeviceLogin(
                tenant_id=t.id,
                client_id=client_id or new_guid(),
                state="expired",
                user_code="ABCD1234",
                verification_uri="https://microsoft.com/devicelogin",
                message="sign in",
                expires_at=now - timedelta(minutes=1),
                interval_s=5,
                next_poll_at=now,
                created_by="cli",
                finished_at=now,
            )
            uow.session.add(login)
            uow.commit()
            return login.id

    def endpoints(self, tenant: str, workspace: str, names: list[str]) -> None:
        from sqlalchemy import select

        from service.db.models import Tenant, Workspace

        with self.db.unit_of_work() as uow:
            ws = uow.session.scalar(
                select(Workspace)
                .join(Tenant, Tenant.id == Workspace.tenant_id)
                .where(Tenant.slug == tenant, Workspace.slug == workspace)
            )
            assert ws is not None
            endpoints.record_observations(
                uow,
                ws,
                [
                    endpoints.ObservedEndpoint(
                        name=n,
                        compute_type="AKS" if i % 2 == 0 else "ACI",
                        state="Healthy",
                        app_insights_enabled=i % 3 == 0,
                        data_collection_enabled=False if i % 2 == 0 else None,
                        scoring_uri=f"https://scoring.example/{n}/score",
                        azure_updated_at=None,
                    )
                    for i, n in enumerate(names)
                ],
                complete=True,
            )
            uow.commit()


TEST_CREDENTIAL_KEY = Fernet.generate_key().decode()


def emulator_azure_settings(emulator: EmulatorHandle) -> AzureSettings:
    """Azure endpoints of the service pointed at the emulator."""
    return AzureSettings(
        authority_host=emulator.authority,
        resource_manager=emulator.arm_endpoint,
        log_analytics_endpoint=emulator.logs_endpoint,
        ca_bundle=str(emulator.ca_path),
        instance_discovery=False,
        managed_identity=False,  # no IMDS here: never probe 169.254.169.254 from tests
    )


@pytest.fixture(scope="session")
def settings(database: Database, emulator: EmulatorHandle) -> Settings:
    """The service's settings for tests: this session's database, Azure = the emulator."""
    return Settings(
        database_url=database.url,
        credential_keys=(TEST_CREDENTIAL_KEY,),
        azure=emulator_azure_settings(emulator),
        # Tests change keys straight in the database, as another process would: no key cache
        # (tests/api/test_key_cache.py covers the cache and its bound for other processes).
        api_key_cache_ttl_s=0.0,
    )


@pytest.fixture(scope="session")
def app(settings: Settings, database: Database) -> Flask:
    return create_app(settings, database=database)


@pytest.fixture(scope="session")
def runtime(app: Flask) -> Runtime:
    """The app's runtime (database, secret box, identity adapter)."""
    rt: Runtime = app.extensions["amlcp.runtime"]
    return rt


@pytest.fixture
def api(app: Flask) -> Iterator[ApiClient]:
    with app.test_client() as client:
        yield ApiClient(client)


@pytest.fixture
def world(runtime: Runtime) -> World:
    return World(runtime)


@pytest.fixture
def admin_key(world: World) -> str:
    """A global admin key."""
    return world.key("admin")
