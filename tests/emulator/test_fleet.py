"""Fleet files seed the emulator; `python -m emulator` serves one standalone."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from azure.identity import CertificateCredential, ClientSecretCredential

from emulator.fleet import apply_fleet, load_fleet
from emulator.state import EmulatorState
from emulator.testing import EmulatorHandle
from emulator.tls import generate_client_certificate

DEMO = Path(__file__).resolve().parents[2] / "emulator" / "fleets" / "demo.yaml"


def test_demo_fleet_has_two_tenants_three_workspaces_thirty_services() -> None:
    state = EmulatorState()
    summary = load_fleet(state, DEMO)
    assert (summary.tenants, summary.workspaces, summary.services) == (2, 3, 30)
    documents = [doc for ws in state.workspaces.values() for doc in state.services.list(ws)]
    assert {d["computeType"] for d in documents} == {"AKS", "ACI"}
    assert {d["appInsightsEnabled"] for d in documents} == {True, False}
    dev = state.get_workspace("0f6c2a1e-1b2c-4d3e-8f4a-5b6c7d8e9f01", "rg-ml-dev", "contoso-ml-dev")
    assert dev is not None
    assert dev.app_insights_resource_id is None


def test_demo_fleet_has_managed_and_kubernetes_online_deployments() -> None:
    state = EmulatorState()
    summary = load_fleet(state, DEMO)
    assert summary.online_deployments == 5
    deployments = [
        d
        for ws in state.workspaces.values()
        for ep in state.online.list_endpoints(ws)
        for d in state.online.list_deployments(ws, ep["name"])
    ]
    computes = {d["properties"]["endpointComputeType"] for d in deployments}
    assert computes == {"Managed", "Kubernetes"}
    assert {d["properties"]["appInsightsEnabled"] for d in deployments} == {True, False}
    collecting = [d["name"] for d in deployments if d["properties"]["dataCollector"]]
    assert collecting == ["green"]


def test_demo_fleet_registers_telemetry_when_the_generator_exists() -> None:
    pytest.importorskip("emulator.telemetry")
    state = EmulatorState()
    summary = load_fleet(state, DEMO)
    assert summary.telemetry_tables > 0
    assert state.telemetry.workspace("11b2c3d4-e5f6-4718-9a0b-c1d2e3f4a5b6") is not None


def test_fleet_principals_authenticate(fresh_emulator: EmulatorHandle) -> None:
    fresh_emulator.load_fleet(DEMO)
    credential = ClientSecretCredential(
        "7c1f7a8e-0d7e-4a59-9c55-1f0d1e2a3b4c",
        "3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b",
        "contoso-demo-secret",
        authority=fresh_emulator.authority,
        disable_instance_discovery=True,
    )
    assert credential.get_token("https://management.azure.com/.default").token


def test_json_fleet_with_a_certificate_principal(
    fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    cert = generate_client_certificate()
    (tmp_path / "app.pem").write_bytes(cert.cert_pem)
    tenant_id, client_id = (
        "11111111-2222-4333-8444-555555555555",
        "66666666-7777-4888-9999-000000000000",
    )
    fleet = {
        "tenants": [
            {
                "id": tenant_id,
                "service_principals": [{"client_id": client_id, "certificate": "app.pem"}],
            }
        ]
    }
    (tmp_path / "fleet.json").write_text(json.dumps(fleet))
    fresh_emulator.load_fleet(tmp_path / "fleet.json")
    credential = CertificateCredential(
        tenant_id,
        client_id,
        certificate_data=cert.combined_pem,
        authority=fresh_emulator.authority,
        disable_instance_discovery=True,
    )
    assert credential.get_token("https://management.azure.com/.default").token


def test_unknown_keys_are_reported_with_their_location() -> None:
    bad = {
        "tenants": [
            {
                "name": "x",
                "subscriptions": [{"name": "s", "workspaces": [{"name": "w", "colour": "red"}]}],
            }
        ]
    }
    with pytest.raises(
        ValueError,
        match=r"tenants\[0\]\.subscriptions\[0\]\.workspaces\[0\]: unknown keys \['colour'\]",
    ):
        apply_fleet(EmulatorState(), bad)


def test_standalone_process_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "emulator",
        "--port",
        "0",
        "--fleet",
        str(DEMO),
        "--tls-dir",
        str(tmp_path),
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip().removeprefix("EMULATOR_URL=")
            ca = process.stdout.readline().strip().removeprefix("EMULATOR_CA=")
            assert Path(ca) == tmp_path / "ca.pem"
            assert (
                requests.get(f"{url}/_admin/health", verify=ca, timeout=5).json()["status"] == "ok"
            )
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
