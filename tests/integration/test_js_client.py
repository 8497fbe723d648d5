"""The official JavaScript client (@azure/monitor-query-logs, pinned in tests/js_client) against
the service's compat endpoint at ``<service>/loganalytics/v1``: query, resource query, partial
result, errors and batch, through the emulator. Node and the client are installed by
``make test`` (``npm ci``); only loopback traffic at test time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from emulator.loganalytics import LogAnalyticsLimits
from emulator.testing import EmulatorHandle
from emulator.tls import CertificateAuthority
from service.db.session import Database
from service.services import audit_queue
from tests.integration.log_support import ROLES, serve_https, wire
from tests.support.api import ApiClient, World, emulator_azure_settings

JS_DIR = Path(__file__).resolve().parent.parent / "js_client"
NODE = shutil.which("node")


@pytest.fixture
def js_result(
    app: Flask, database: Database, world: World, admin_key: str,
    fresh_emulator: EmulatorHandle, emulator_ca: CertificateAuthority, tmp_path: Path,
) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Run the Node script once against a service wired to a private emulator."""
    if NODE is None:
        pytest.skip("node is not installed on this machine (the JS client test needs it)")
    assert (JS_DIR / "node_modules" / "@azure" / "monitor-query-logs").is_dir(), (
        "the JS client is not installed: run `make jsdeps` (make test does)"
    )
    from service.app import create_app

    settings = app.extensions["amlcp.runtime"].settings.with_overrides(
        azure=emulator_azure_settings(fresh_emulator)
    )
    own = create_app(settings, database=database)
    box = fresh_emulator.sandbox()
    with own.test_client() as http:
        w = wire(ApiClient(http), world, admin_key, box)
    # One group per summarize: a by-role summarize (two roles) overflows into a partial result.
    fresh_emulator.state.log_analytics.limits = LogAnalyticsLimits(max_summarize_groups=1)
    with serve_https(own, emulator_ca, tmp_path) as url:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "NODE_EXTRA_CA_CERTS": str(emulator_ca.ca_path),
            "ENDPOINT": f"{url}/loganalytics/v1",
            "API_KEY": w.reader,
            "WORKSPACE_ID": str(box.log_analytics_workspace_id),
            "RESOURCE_ID": str(box.app_insights_resource_id),
        }
        done = subprocess.run(
            [NODE, "logs_client.mjs"], cwd=JS_DIR, env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    yield json.loads(done.stdout)
    audit_queue.flush(own.extensions["amlcp.runtime"])


def test_the_official_js_client_queries_through_the_compat_endpoint(
    js_result: dict[str, Any],
) -> None:
    statuses = js_result["statuses"]
    query = js_result["query"]
    assert query["status"] == statuses["Success"]
    assert query["tables"][0]["columns"] == ["n"]
    assert query["tables"][0]["rows"][0][0] > 0
    resource = js_result["resource"]
    assert resource["status"] == statuses["Success"]
    assert resource["tables"][0]["rows"][0][0] > 0


def test_the_js_client_gets_partial_results_and_errors_it_can_read(
    js_result: dict[str, Any],
) -> None:
    statuses = js_result["statuses"]
    partial = js_result["partial"]
    assert partial["status"] == statuses["PartialFailure"]
    assert partial["partialError"]["code"] == "PartialError"
    assert len(partial["tables"][0]["rows"]) == 1 < len(ROLES)
    error = js_result["error"]["thrown"]
    assert (error["statusCode"], error["detailsCode"]) == (400, "BadArgumentError")
    missing = js_result["missing"]["thrown"]
    assert (missing["statusCode"], missing["detailsCode"]) == (404, "WorkspaceNotFoundError")


def test_the_js_client_batch_gets_one_answer_per_entry(js_result: dict[str, Any]) -> None:
    statuses = js_result["statuses"]
    ok, bad, missing = js_result["batch"]
    assert ok["status"] == statuses["Success"]
    assert ok["tables"][0]["rows"][0][0] > 0
    # Client 1.0.0 reports a failed entry as PartialFailure with no tables and the entry's error
    # as partialError (convertToLogsBatchResult); the codes are what matter.
    for entry, code in ((bad, "BadArgumentError"), (missing, "WorkspaceNotFoundError")):
        assert entry["status"] in (statuses["Failure"], statuses["PartialFailure"])
        assert entry["tables"] == []
        assert (entry["error"] or entry["partialError"])["code"] == code
