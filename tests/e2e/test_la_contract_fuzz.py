"""schemathesis with Azure's Log Analytics OpenAPI document against the service's compat
endpoint: no server errors, and every answer in the document's shapes (errors included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from emulator.telemetry import TelemetrySpec, generate
from emulator.testing import EmulatorHandle
from service.config import PROJECT_ROOT
from tests.e2e.conftest import LiveService
from tests.integration.log_support import NOW, START
from tests.support.reference import reference, require

CONFIG = Path(__file__).with_name("schemathesis_loganalytics.toml")
SPEC = reference(
    "azure-rest-api-specs/specification/operationalinsights/data-plane"
    "/Microsoft.OperationalInsights/stable/2022-10-27/OperationalInsights.json"
)


def _spec_copy(directory: Path) -> Path:
    """The official document with its two relaxations (see the config file): cells are any
    JSON value, and a body's optional timespan/workspaces may be null."""
    spec = json.loads(SPEC.read_text())
    spec["definitions"]["table"]["properties"]["rows"]["items"]["items"] = {}
    for name in ("timespan", "workspaces"):
        spec["definitions"]["queryBody"]["properties"][name]["x-nullable"] = True
    # Examples (the document's own example files are not in the reference copy), so that the
    # examples phase also sends queries the emulator answers with tables.
    valid = "AppRequests | summarize n = count() by AppRoleName"
    spec["definitions"]["queryParam"]["example"] = valid
    spec["parameters"]["queryParam"]["x-example"] = valid
    spec.pop("security", None)  # the API key goes in the configured Authorization header
    path = directory / "OperationalInsights.json"
    path.write_text(json.dumps(spec))
    return path


def test_the_compat_endpoint_honours_azures_log_analytics_contract(
    live_service: LiveService, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    require(SPEC)
    box = emulator.sandbox()
    admin = live_service.create_key("admin")
    auth = {"Authorization": f"Bearer {admin}"}
    url = live_service.url
    tenant = {"slug": "la-fuzz", "display_name": "LA fuzz", "entra_tenant_id": box.tenant_id}
    assert requests.post(url + "/v1/tenants", json=tenant, headers=auth).status_code == 201
    credential = {"kind": "service_principal", "client_id": box.client_id,
                  "client_secret": box.client_secret}  # fmt: skip
    r = requests.put(url + "/v1/tenants/la-fuzz/credential", json=credential, headers=auth)
    assert r.status_code == 201, r.text
    workspace = {
        "slug": "la-fuzz-ws",
        "subscription_id": box.subscription_id,
        "resource_group": box.resource_group,
        "workspace_name": box.workspace_name,
        "log_analytics_workspace_id": box.log_analytics_workspace_id,
        "app_insights_resource_id": box.app_insights_resource_id,
    }
    r = requests.post(url + "/v1/tenants/la-fuzz/workspaces", json=workspace, headers=auth)
    assert r.status_code == 201, r.text
    assert box.log_analytics_workspace_id is not None
    tables = generate(TelemetrySpec(roles=("a", "b"), start=START, end=NOW, seed=3))
    emulator.state.telemetry.add_workspace(
        box.log_analytics_workspace_id, {n: t for n, t in tables.items() if n.startswith("App")}
    )
    assert box.app_insights_resource_id is not None
    emulator.state.telemetry.add_resource(
        box.app_insights_resource_id, {n: t for n, t in tables.items() if n.startswith("App")}
    )
    reader = live_service.create_key("reader", "la-fuzz")
    env = {
        **os.environ,
        "AMLCP_FUZZ_READER_KEY": reader,
        "AMLCP_FUZZ_WORKSPACE_ID": box.log_analytics_workspace_id,
        "AMLCP_FUZZ_RESOURCE_ID": box.app_insights_resource_id.lstrip("/"),
    }
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "--config-file",
            str(CONFIG),
            "run",
            str(_spec_copy(tmp_path)),
            "--url",
            url + "/loganalytics/v1",
            "--no-color",
        ],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "Traceback" not in live_service.logs()
    # The run reached Azure (the emulator) with queries it answered, not only 404s and 400s.
    events = requests.get(
        url + "/v1/audit-events", headers=auth, params={"action": "logs.compat", "limit": 200}
    ).json()["items"]
    outcomes = [(e["after"].get("status"), e["after"].get("error")) for e in events]
    assert ("success", None) in outcomes, outcomes[:20]
