"""Discovery of one workspace of many online endpoints: the service vs the same lists in turn.

    .venv/bin/python -m bench.discovery [--services 40] [--online-endpoints 40] [--rounds 5]
        [--latency-ms 100]

An emulator subprocess holds one tenant, one workspace: ``--services`` web services and
``--online-endpoints`` online endpoints of two deployments each (blue, green); every call of
the ML routes (MMS, ARM online endpoints and deployments) takes ``--latency-ms`` (100 ms, as
in ``bench.reconcile_converge``). ARM lists deployments per online endpoint, so a discovery
is 1 + 1 + N lists. Measured: ``discovery.discover`` of the workspace (what ``POST .../sync``
and the reconciler's sweep run, recording included), ``--rounds`` times. Baseline, alternated
with it round by round: the same lists through the same SDKs one after another
(``Webservice.list``, then azure-ai-ml's ARM client: the online endpoints, then the
deployments of each), as discovery listed before e1a38cc. Prints both and their ratio; the
issue sets no target for discovery (P3 counts it in its convergence).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests
import yaml

from bench.reconcile_converge import ONLINE_ROUTES, _start_emulator

RG = "rg-bench"


def _fleet(path: Path, services: int, online_endpoints: int) -> dict[str, str]:
    tenant, client_id, secret, sub = (str(uuid.uuid4()) for _ in range(4))
    workspace = {
        "name": "ws-discovery",
        "resource_group": RG,
        "location": "westeurope",
        "app_insights": True,
        "log_analytics_workspace_id": False,
        "services": [
            {"name": f"svc-{i:03d}", "compute_type": "AKS" if i % 2 else "ACI"}
            for i in range(services)
        ],
        "online_endpoints": [
            {
                "name": f"oe-{i:03d}",
                "compute_type": "Kubernetes" if i % 2 else "Managed",
                "deployments": [{"name": "blue"}, {"name": "green"}],
            }
            for i in range(online_endpoints)
        ],
    }
    fleet = {
        "tenants": [
            {
                "id": tenant,
                "name": "tenant-discovery",
                "subscriptions": [{"id": sub, "name": "sub", "workspaces": [workspace]}],
                "service_principals": [{"client_id": client_id, "secret": secret}],
            }
        ]
    }
    path.write_text(yaml.safe_dump(fleet))
    return {
        "tenant": tenant,
        "client_id": client_id,
        "secret": secret,
        "subscription": sub,
        "workspace": workspace["name"],
    }


def _service(url: str, ca: str, work: Path, row: dict[str, str]) -> tuple[Any, str]:
    """The service's runtime (SQLite) with the tenant, its credential and the workspace."""
    from cryptography.fernet import Fernet

    from bench.reconcile_converge import emulator_azure
    from service.bootstrap import build_runtime
    from service.config import Settings
    from service.db import migrate
    from service.domain.access import CLI_PRINCIPAL
    from service.services import credentials, tenants, workspaces
    from service.services.context import CallContext

    db_url = f"sqlite:///{work / 'service.db'}"
    migrate.upgrade(db_url)
    settings = Settings(
        database_url=db_url,
        credential_keys=(Fernet.generate_key().decode(),),
        azure=emulator_azure(url, ca),
    )
    rt = build_runtime(settings)
    ctx = CallContext(CLI_PRINCIPAL)
    tenants.create_tenant(
        rt, ctx, {"slug": "t", "display_name": "t", "entra_tenant_id": row["tenant"]}
    )
    credentials.put_credential(
        rt,
        ctx,
        "t",
        {
            "kind": "service_principal",
            "client_id": row["client_id"],
            "client_secret": row["secret"],
        },
        None,
    )
    ws = workspaces.create_workspace(
        rt,
        ctx,
        "t",
        {
            "slug": "w",
            "subscription_id": row["subscription"],
            "resource_group": RG,
            "workspace_name": row["workspace"],
        },
    )
    return rt, ws.id


def _sequential(url: str, ca: str, row: dict[str, str]) -> Any:
    """The baseline: every list through the SDKs, one after another; returns a callable that
    lists the workspace once and answers how many targets it saw."""
    import azureml._restclient.clientbase as clientbase
    from azureml.core.webservice import Webservice

    from bench.reconcile_baseline import arm_client, sp_credential, v1_workspace

    clientbase.DEFAULT_RETRIES = 0  # as the service runs it (no faults are injected here)
    credential = sp_credential(url, ca, row)
    ws = v1_workspace(url, credential, row)
    arm = arm_client(url, ca, credential, row)

    def list_all() -> int:
        seen = len(Webservice.list(ws))
        for endpoint in arm.online_endpoints.list(RG, row["workspace"]):
            seen += len(list(arm.online_deployments.list(RG, row["workspace"], endpoint.name)))
        return seen

    return list_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=40)
    parser.add_argument("--online-endpoints", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-discovery-"))
    os.environ.setdefault("HOME", str(work))
    os.environ["AZURE_CONFIG_DIR"] = str(work / ".azure")
    os.environ["AZUREML_CURRENT_CLOUD"] = "AzureCloud"
    row = _fleet(work / "fleet.yaml", args.services, args.online_endpoints)
    proc, url, ca = _start_emulator(work / "fleet.yaml", work / "tls", 2.0)
    os.environ["REQUESTS_CA_BUNDLE"] = ca
    try:
        admin = requests.Session()
        admin.verify = ca
        for family in ["mms.", *ONLINE_ROUTES]:
            admin.post(
                f"{url}/_admin/faults",
                json={"kind": "latency", "route": family, "latency_s": args.latency_ms / 1000},
            ).raise_for_status()
        from service.services import discovery

        rt, ws_id = _service(url, ca, work, row)
        baseline = _sequential(url, ca, row)
        targets = args.services + 2 * args.online_endpoints
        # Warm-up, each once: tokens, clients, the workspace's first recording.
        assert discovery.discover(rt, ws_id).endpoints == targets
        assert baseline() == targets
        service_s, baseline_s = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            result = discovery.discover(rt, ws_id)
            service_s.append(time.perf_counter() - t0)
            assert result.endpoints == targets, result
            t0 = time.perf_counter()
            seen = baseline()
            baseline_s.append(time.perf_counter() - t0)
            assert seen == targets, seen
        lists = 2 + args.online_endpoints
        print(
            f"workspace: {args.services} web services, {args.online_endpoints} online endpoints "
            f"x 2 deployments; {lists} lists; {args.latency_ms:g} ms per Azure call",
            flush=True,
        )
        print("service discovery (s):    " + " ".join(f"{s:.2f}" for s in service_s))
        print("sequential SDK lists (s): " + " ".join(f"{s:.2f}" for s in baseline_s))
        median_service = statistics.median(service_s)
        median_base = statistics.median(baseline_s)
        print(
            f"discovery: median {median_service:.2f} s vs the lists in turn {median_base:.2f} s: "
            f"{median_base / median_service:.1f}x faster; the lists' latency alone in turn "
            f">= {lists * args.latency_ms / 1000:.1f} s",
            flush=True,
        )
        return 0
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
