"""`make demo` end to end: the printed walkthrough, run as printed, against the demo's processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.monitor.query import LogsQueryClient, LogsQueryStatus

from demo.walkthrough import DELEGATED_USER, RETENTION_STEPS, STEPS, Step
from service.config import PROJECT_ROOT
from tests.e2e.conftest import free_port


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("demo") / "state"
    port = free_port()
    command = [
        "make",
        "-s",
        "demo",
        f"DEMO_DIR={workdir}",
        f"DEMO_PORT={port}",
        f"DEMO_EMULATOR_PORT={free_port()}",
    ]
    log = (workdir.parent / "demo.out").open("wb")
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    info_path = workdir / "demo.json"
    try:
        deadline = time.monotonic() + 120
        while not info_path.exists():
            assert process.poll() is None, (workdir.parent / "demo.out").read_text()[-3000:]
            assert time.monotonic() < deadline, "the demo did not start in 2 minutes"
            time.sleep(0.5)
        info = json.loads(info_path.read_text())
        info["printed"] = (workdir.parent / "demo.out").read_text()
        yield info
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
        finally:
            log.close()
        # Ctrl-C (here SIGTERM) stops everything: nothing listens on the service port any more.
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0


def _session(info: dict[str, Any]) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.verify = info["ca_path"]
    s.headers["Authorization"] = f"Bearer {info['admin_key']}"
    return s


def _call(s: requests.Session, info: dict[str, Any], step: Step, values: dict[str, str]) -> Any:
    path = step.path.format(**values) if step.needs else step.path
    r = s.request(step.method, info["service_url"] + path, json=step.body, timeout=60)
    assert r.status_code in step.expect, (step.title, r.status_code, r.text[:1000])
    return r.json()


def _until(check: Any, what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def test_the_demo_prints_a_key_and_every_walkthrough_step(demo: dict[str, Any]) -> None:
    printed = demo["printed"]
    assert f"export AMLCP_KEY={demo['admin_key']}" in printed
    assert f"console   {demo['service_url']}/console/" in printed
    for step in (*STEPS, *RETENTION_STEPS):
        assert step.title in printed
    assert "LogsQueryClient" in printed


def test_the_walkthrough_works_as_printed(demo: dict[str, Any]) -> None:
    s = _session(demo)
    values: dict[str, str] = {}
    listed = _call(s, demo, STEPS[0], values)
    assert listed["items"], "discovery found the fleet's endpoints"
    assert _call(s, demo, STEPS[1], values)["totals"]

    change = _call(s, demo, STEPS[2], values)
    assert change["operations"], "the fleet has endpoints with App Insights off"

    # The step as printed: its totals cover every endpoint, not a first page of operations.
    converged = _until(
        lambda: (r := _call(s, demo, STEPS[3], values))["totals"]["pending"] == 0 and r,
        "the policy's operations to finish",
    )
    assert converged["totals"]["drifted"] == converged["totals"]["failed"] == 0
    assert _call(s, demo, STEPS[4], values)["items"] == []
    queued_or_running = [
        op
        for state in ("queued", "running")
        for op in s.get(
            f"{demo['service_url']}/v1/operations",
            params={"tenant": "contoso", "state": state},
            timeout=60,
        ).json()["items"]
    ]
    assert queued_or_running == [], "compliance said converged while operations were active"

    requests_view = _call(s, demo, STEPS[5], values)
    assert sum(item["requests"] for item in requests_view["items"]) > 0
    assert _call(s, demo, STEPS[6], values)["items"]
    assert _call(s, demo, STEPS[7], values)["content"]

    login = _call(s, demo, STEPS[8], values)
    values["login_id"] = login["id"]
    approved = requests.post(
        f"{demo['emulator_url']}/_admin/device-codes/approve",
        json={"user_code": login["user_code"], "username": DELEGATED_USER},
        verify=demo["ca_path"],
        timeout=10,
    )
    assert approved.status_code in (200, 204), approved.text
    done = _until(
        lambda: (r := _call(s, demo, STEPS[9], values))["state"] != "pending" and r,
        "the device login to finish",
    )
    assert done["state"] == "succeeded"
    assert done["username"] == DELEGATED_USER
    assert _call(s, demo, STEPS[10], values)["identity"]["username"] == DELEGATED_USER
    registered = _call(s, demo, STEPS[11], values)
    assert registered["subscription_id"] == STEPS[11].body["subscription_id"]  # type: ignore[index]
    # Nobody synced Fabrikam: its new workspace was due at once and the reconciler listed it.
    fabrikam = _until(
        lambda: (r := _call(s, demo, STEPS[12], values))["items"] and r,
        "Fabrikam's endpoints to appear without a sync",
    )
    assert all(e["workspace"] == "analytics" for e in fabrikam["items"])

    # The tenant policy reaches SDK v2 deployments too (the walkthrough's last three steps).
    v2_step, v2_policy, v2_logs = STEPS[-3:]
    deployment = _until(
        lambda: (r := _call(s, demo, v2_step, values))["app_insights_enabled"] and r,
        "App Insights on churn-v2.blue",
    )
    assert (deployment["kind"], deployment["rolls_instances"]) == ("managed_online", True)
    change = _call(s, demo, v2_policy, values)
    assert {op["endpoint"] for op in change["operations"]} == {"churn-v2.blue"}
    assert all(op["rolls_instances"] for op in change["operations"])
    _until(
        lambda: bool(_call(s, demo, v2_step, values)["data_collection_enabled"]),
        "model data collection on churn-v2.blue",
    )
    assert "instanceGeneration" in _call(s, demo, v2_logs, values)["content"]


def test_the_retention_steps_work_as_printed_and_exported_rows_reach_azurite(
    demo: dict[str, Any],
) -> None:
    s = _session(demo)
    values: dict[str, str] = {}
    tenant_change = _call(s, demo, RETENTION_STEPS[0], values)
    assert tenant_change["policy"]["unsupported_tables"] == {}
    _call(s, demo, RETENTION_STEPS[1], values)
    assert _call(s, demo, RETENTION_STEPS[2], values)["compliance"] in ("pending", "compliant")
    assert _call(s, demo, RETENTION_STEPS[3], values)["compliance"] in ("pending", "compliant")
    converged = _until(
        lambda: (
            (r := _call(s, demo, RETENTION_STEPS[4], values))
            and {v["compliance"] for v in r["workspaces"]} == {"compliant"}
            and r
        ),
        "the retention policy to converge",
    )
    assert sorted(v["workspace"] for v in converged["workspaces"]) == ["dev", "prod"]
    if demo.get("azurite_connection_string") is None:
        pytest.skip("Azurite is not running in this demo (npm missing): delivery not checked")
    row = {"TimeGenerated": "2026-09-10T11:12:13Z", "Name": "POST /score", "ResultCode": "200"}
    ingested = requests.post(
        f"{demo['emulator_url']}/_admin/log-analytics/ingest",
        json={"workspace_id": demo["la_workspace_id"], "table": "AppRequests", "records": [row]},
        verify=demo["ca_path"],
        timeout=30,
    )
    assert ingested.status_code == 200, ingested.text
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(demo["azurite_connection_string"]) as blobs:
        container = blobs.get_container_client("am-apprequests")
        names = [b.name for b in container.list_blobs()]
        assert [n.rsplit("/y=", 1)[1] for n in names] == ["2026/m=09/d=10/h=11/m=10/PT05M.json"]
        text = container.download_blob(names[0]).readall().decode()
    assert [json.loads(line)["Name"] for line in text.splitlines()] == ["POST /score"]


def test_the_real_logs_client_queries_through_the_service(demo: dict[str, Any]) -> None:
    class ApiKey:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(demo["admin_key"], int(time.time()) + 3600)

    client = LogsQueryClient(
        ApiKey(), endpoint=f"{demo['service_url']}/loganalytics", connection_verify=demo["ca_path"]
    )
    result = client.query_workspace(
        demo["la_workspace_id"],
        "AppRequests | summarize count() by AppRoleName | top 5 by count_",
        timespan=None,
    )
    assert result.status == LogsQueryStatus.SUCCESS
    assert len(result.tables[0].rows) == 5
