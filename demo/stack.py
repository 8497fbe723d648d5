"""Start the demo: emulator (in this process), the service (gunicorn, HTTPS) and the reconciler."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet

from demo.walkthrough import RETENTION_STORAGE, RETENTION_STORAGE_DEV
from emulator.app import build_app
from emulator.azurite import Azurite, start_azurite, unavailable_reason
from emulator.data_export import add_storage_account
from emulator.fleet import load_fleet
from emulator.https import EmulatorServer
from emulator.state import EmulatorState
from emulator.tls import CertificateAuthority

ROOT = Path(__file__).resolve().parent.parent
FLEET = ROOT / "emulator" / "fleets" / "demo.yaml"
BIN = Path(sys.executable).parent

# The demo fleet's identities (emulator/fleets/demo.yaml).
CONTOSO_TENANT = "7c1f7a8e-0d7e-4a59-9c55-1f0d1e2a3b4c"
CONTOSO_SP = ("3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b", "contoso-demo-secret")
CONTOSO_SUB = "0f6c2a1e-1b2c-4d3e-8f4a-5b6c7d8e9f01"
FABRIKAM_TENANT = "8d2e8b9f-1e8f-4b6a-8d66-2e1f2e3b4c5d"
FABRIKAM_PUBLIC_CLIENT = "0b9c8d7e-6f5a-4b4c-9d3e-2f1a0b9c8d7e"
FABRIKAM_SUB = "1a7d3b2f-2c3d-4e4f-9a5b-6c7d8e9f0a12"


@dataclass(frozen=True)
class DemoInfo:
    """What a user (or the e2e test) needs to talk to the running demo; saved as demo.json."""

    service_url: str
    console_url: str
    emulator_url: str
    ca_path: str
    admin_key: str
    la_workspace_id: str
    workdir: str
    azurite_blob_endpoint: str | None = None  # where exported rows land (None: not running)
    azurite_connection_string: str | None = None


def _workspaces() -> list[tuple[str, dict[str, Any]]]:
    ai = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Insights/components/{name}"
    return [
        (
            "contoso",
            {
                "slug": "prod",
                "display_name": "Contoso ML production",
                "subscription_id": CONTOSO_SUB,
                "resource_group": "rg-ml-prod",
                "workspace_name": "contoso-ml-prod",
                "app_insights_resource_id": ai.format(
                    sub=CONTOSO_SUB, rg="rg-ml-prod", name="contoso-ml-prod-ai"
                ),
                "log_analytics_workspace_id": "11b2c3d4-e5f6-4718-9a0b-c1d2e3f4a5b6",
            },
        ),
        (
            "contoso",
            {
                "slug": "dev",
                "display_name": "Contoso ML development",
                "subscription_id": CONTOSO_SUB,
                "resource_group": "rg-ml-dev",
                "workspace_name": "contoso-ml-dev",
                "log_analytics_workspace_id": "22c3d4e5-f6a7-4829-8b1c-d2e3f4a5b6c7",
            },
        ),
    ]


def _descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (Linux /proc; none found elsewhere), deepest first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    found: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(children.get(child, []))
    return found[::-1]


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class DemoStack:
    """Owns the demo's processes; `start()` then `stop()` (also on SIGINT/SIGTERM)."""

    def __init__(self, workdir: Path, *, port: int, emulator_port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.emulator_port = emulator_port
        self.processes: list[subprocess.Popen[bytes]] = []
        self.emulator: EmulatorServer | None = None
        self.azurite: Azurite | None = None

    def start(self) -> DemoInfo:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)  # every demo starts from the same state
        tls = self.workdir / "tls"
        ca = CertificateAuthority.create(tls)
        state = EmulatorState()
        state.services.operation_duration_s = 2.0
        self.emulator = EmulatorServer(
            build_app(state), port=self.emulator_port, ca=ca, tls_dir=tls
        )
        self.emulator.start()
        load_fleet(state, FLEET)
        self._retention_destinations(state)
        cert, key = ca.issue_server_cert(tls)
        env = self._environment(ca.ca_path)
        self._run([sys.executable, "-m", "service.cli", "db-upgrade"], env)
        admin_key = self._run(
            [sys.executable, "-m", "service.cli", "keys", "create", "--name", "demo-admin"], env
        ).strip()
        self._spawn(
            [
                str(BIN / "gunicorn"),
                "--config",
                "gunicorn.conf.py",
                "--certfile",
                str(cert),
                "--keyfile",
                str(key),
                "wsgi:app",
            ],
            env,
            "service.log",
        )
        self._spawn([sys.executable, "-m", "service.worker"], env, "worker.log")
        info = DemoInfo(
            service_url=f"https://127.0.0.1:{self.port}",
            console_url=f"https://127.0.0.1:{self.port}/console/",
            emulator_url=self.emulator.url,
            ca_path=str(ca.ca_path),
            admin_key=admin_key,
            la_workspace_id="11b2c3d4-e5f6-4718-9a0b-c1d2e3f4a5b6",
            workdir=str(self.workdir),
            azurite_blob_endpoint=self.azurite.blob_endpoint if self.azurite else None,
            azurite_connection_string=self.azurite.connection_string if self.azurite else None,
        )
        self._wait_ready(info)
        self._seed(info)
        (self.workdir / "demo.json").write_text(json.dumps(asdict(info), indent=2))
        return info

    def stop(self, within_s: float = 8.0) -> None:
        """Stop every process the demo started, their children included, within ``within_s``.

        SIGINT asks gunicorn for its quick shutdown (the reconciler stops after its step);
        whatever is still there at the deadline is killed, children before parents: killing
        only gunicorn's master used to leave its workers behind, orphaned, on the demo port.
        """
        deadline = time.monotonic() + within_s
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for pid in [*_descendants(process.pid), process.pid]:
                    _kill(pid)
                process.wait()
        if self.emulator is not None:
            # cheroot waits up to 5 s for each busy connection thread, then 5 s for its own:
            # the services that held connections to it are gone, so a second is plenty.
            server = getattr(self.emulator, "_server", None)
            if server is not None:
                server.shutdown_timeout = 1
            self.emulator.stop()
        if self.azurite is not None:
            self.azurite.stop()

    def _retention_destinations(self, state: EmulatorState) -> None:
        """The walkthrough's storage accounts, backed by Azurite when it can run here."""
        if unavailable_reason() is None:
            self.azurite = start_azurite(self.workdir / "azurite")
        connection = self.azurite.connection_string if self.azurite else None
        for resource_id, location in (
            (RETENTION_STORAGE, "westeurope"),
            (RETENTION_STORAGE_DEV, "northeurope"),
        ):
            add_storage_account(state, resource_id, location=location, connection_string=connection)

    def _environment(self, ca_path: Path) -> dict[str, str]:
        emulator_url = self.emulator.url if self.emulator else ""
        home = self.workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{self.workdir / 'service.db'}",
            "BIND": f"127.0.0.1:{self.port}",
            "CREDENTIAL_KEYS": Fernet.generate_key().decode(),
            "AZURE_AUTHORITY_HOST": emulator_url,
            "AZURE_RESOURCE_MANAGER": emulator_url,
            "AZURE_LOG_ANALYTICS_ENDPOINT": f"{emulator_url}/v1",
            "AZURE_CA_BUNDLE": str(ca_path),
            "AZURE_MANAGED_IDENTITY": "false",
            # azureml-core and msal use requests: trust the demo CA; keep its caches here.
            "REQUESTS_CA_BUNDLE": str(ca_path),
            "HOME": str(home),
            "AZURE_CONFIG_DIR": str(home / ".azure"),
            "AZUREML_CURRENT_CLOUD": "AzureCloud",
            "LOG_FORMAT": "text",
        }

    def _run(self, command: list[str], env: dict[str, str]) -> str:
        done = subprocess.run(
            command, env=env, cwd=ROOT, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def _spawn(self, command: list[str], env: dict[str, str], log_name: str) -> None:
        with (self.workdir / log_name).open("wb") as log:
            self.processes.append(
                subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            )

    def _wait_ready(self, info: DemoInfo) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a demo process exited early: see {self.workdir}/*.log")
            try:
                ready = requests.get(f"{info.service_url}/readyz", verify=info.ca_path, timeout=5)
                if ready.status_code == 200:
                    return
            except requests.RequestException:
                pass  # still starting
            time.sleep(0.3)
        raise RuntimeError(f"the service did not become ready: see {self.workdir}/service.log")

    def _seed(self, info: DemoInfo) -> None:
        """Register the fleet the way an admin would: through the API."""
        s = requests.Session()
        s.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides `verify`
        s.verify = info.ca_path
        s.headers["Authorization"] = f"Bearer {info.admin_key}"
        base = info.service_url

        def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
            r = s.request(method, base + path, json=body, timeout=30)
            if r.status_code >= 300:
                raise RuntimeError(f"seeding {method} {path}: {r.status_code} {r.text[:500]}")
            return r.json() if r.content else None

        call(
            "POST",
            "/v1/tenants",
            {
                "slug": "contoso",
                "display_name": "Contoso",
                "entra_tenant_id": CONTOSO_TENANT,
            },
        )
        call(
            "POST",
            "/v1/tenants",
            {
                "slug": "fabrikam",
                "display_name": "Fabrikam",
                "entra_tenant_id": FABRIKAM_TENANT,
            },
        )
        call(
            "PUT",
            "/v1/tenants/contoso/credential",
            {
                "kind": "service_principal",
                "client_id": CONTOSO_SP[0],
                "client_secret": CONTOSO_SP[1],
            },
        )
        call(
            "PUT",
            "/v1/tenants/fabrikam/credential",
            {
                "kind": "delegated",
                "client_id": FABRIKAM_PUBLIC_CLIENT,
            },
        )
        # Fabrikam's workspace is registered in the walkthrough, once someone has signed in:
        # registration asks Resource Manager with the tenant's credential.
        for tenant, workspace in _workspaces():
            call("POST", f"/v1/tenants/{tenant}/workspaces", workspace)
        for workspace in ("prod", "dev"):
            call("POST", f"/v1/tenants/contoso/workspaces/{workspace}/sync")
        # Contoso starts in audit mode: drift is reported (the console's compliance page shows
        # it), nothing is changed until someone enforces a policy.
        call("PUT", "/v1/tenants/contoso/policy", {"app_insights": True, "mode": "audit"})
