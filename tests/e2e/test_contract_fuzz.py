"""A bounded schemathesis run against the live service over openapi.yaml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from emulator.testing import EmulatorHandle
from service.config import PROJECT_ROOT
from tests.e2e.conftest import LiveService

CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_the_live_api_has_no_server_errors_and_conforms_to_its_contract(
    live_service: LiveService, emulator: EmulatorHandle
) -> None:
    admin = live_service.create_key("admin")
    auth = {"Authorization": f"Bearer {admin}"}
    # Registering a workspace asks Resource Manager with the tenant's credential.
    box = emulator.sandbox(prefix="fuzz")
    tenant = {"slug": "fuzz", "display_name": "Fuzz", "entra_tenant_id": box.tenant_id}
    assert (
        requests.post(live_service.url + "/v1/tenants", json=tenant, headers=auth).status_code
        == 201
    )
    credential = {
        "kind": "service_principal",
        "client_id": box.client_id,
        "client_secret": box.client_secret,
    }
    r = requests.put(
        live_service.url + "/v1/tenants/fuzz/credential", json=credential, headers=auth
    )
    assert r.status_code == 201, r.text
    workspace = {
        "slug": "fuzz-ws",
        "subscription_id": box.subscription_id,
        "resource_group": box.resource_group,
        "workspace_name": box.workspace_name,
    }
    r = requests.post(
        live_service.url + "/v1/tenants/fuzz/workspaces", json=workspace, headers=auth
    )
    assert r.status_code == 201, r.text
    env = {
        **os.environ,
        "AMLCP_FUZZ_ADMIN_KEY": admin,
        # The contract's own string formats (display-name): see the module's docstring.
        "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
    }
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "--config-file",
            str(CONFIG),
            "run",
            str(PROJECT_ROOT / "openapi.yaml"),
            "--url",
            live_service.url,
            "--no-color",
        ],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "Traceback" not in live_service.logs()
