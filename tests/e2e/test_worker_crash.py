"""Crash safety with real processes: a worker SIGKILLed mid-operation loses nothing.

Its leases expire, a second worker resumes (following the Azure operation the first one started
instead of writing again), and the emulator's request log shows no duplicate PATCH. When it
fails it prints the operations, their attempts, the emulator's writes and the workers' log tail.
``bench/crash_loop.py`` runs it many times in a row.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from emulator.testing import EmulatorHandle
from service.config import PROJECT_ROOT, Settings
from service.db.models import Operation, OperationAttempt
from service.db.session import Database
from service.errors import ServiceError, is_temporary
from service.services import discovery, policies
from service.services.runtime import Runtime
from tests.support.api import TEST_CREDENTIAL_KEY, World
from tests.support.reconcile import CLI, fast_runtime, operations_of, settled, wire

# A fresh worker process needs a few seconds to import azureml-core, load the workspace and get
# going; on a loaded 2-core machine that took 26 s once. The deadline bounds liveness only: what
# the test checks (one accepted PATCH per service, every operation succeeded) does not depend on
# it.
PROCESS_DEADLINE_S = 120

FAST_ENV = {
    "RECONCILER_INTERVAL_S": "0.05",
    "OPERATION_LEASE_S": "2",
    "AZURE_CALL_TIMEOUT_S": "1",
    "OPERATION_POLL_INTERVAL_S": "0.05",
    "RETRY_BASE_S": "0.1",
    "DISCOVERY_INTERVAL_S": "3600",
}


def _worker(
    database: Database, emulator: EmulatorHandle, log: Path, tenant_id: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        # Only this test's tenant: other tests' operations share the session database.
        "RECONCILER_TENANTS": tenant_id,
        "DATABASE_URL": database.url,
        "AZURE_AUTHORITY_HOST": emulator.authority,
        "AZURE_RESOURCE_MANAGER": emulator.arm_endpoint,
        "AZURE_LOG_ANALYTICS_ENDPOINT": emulator.logs_endpoint,
        "AZURE_CA_BUNDLE": str(emulator.ca_path),
        "AZURE_MANAGED_IDENTITY": "false",
        "CREDENTIAL_KEYS": TEST_CREDENTIAL_KEY,
        **FAST_ENV,
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.worker"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _discover(rt: Runtime, workspace_id: str) -> None:
    """The set-up's listing, retried while Azure (the emulator, on a loaded machine) is slower
    than the test's 1 s call deadline: a temporary failure, not what this test is about."""
    deadline = time.monotonic() + PROCESS_DEADLINE_S
    while True:
        try:
            discovery.discover(rt, workspace_id)
            return
        except ServiceError as exc:
            if not is_temporary(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _diagnostics(rt: Runtime, tenant_id: str, emulator: EmulatorHandle, log: Path) -> str:
    lines = ["operations:"]
    with rt.uow() as uow:
        ops = list(uow.session.scalars(select(Operation).where(Operation.tenant_id == tenant_id)))
        for op in ops:
            lines.append(
                f"  {op.endpoint_name} {op.id} state={op.state} attempts={op.attempts}/"
                f"{op.max_attempts} fence={op.fence} lease={op.lease_owner}@{op.lease_expires_at}"
                f" azure_op={op.azure_operation_id} last_error={op.last_error!r}"
            )
            for a in uow.session.scalars(
                select(OperationAttempt)
                .where(OperationAttempt.operation_id == op.id)
                .order_by(OperationAttempt.number)
            ):
                lines.append(
                    f"    #{a.number} {a.worker} {a.started_at:%H:%M:%S.%f}-"
                    f"{a.finished_at and f'{a.finished_at:%H:%M:%S.%f}'} {a.outcome} "
                    f"charged={a.charged} azure={a.azure_status}/{a.azure_code} "
                    f"op={a.azure_operation_id} error={a.error!r}"
                )
    lines.append("emulator writes (service PATCHes, deployment PUTs):")
    for route in ("mms.service_patch", "arm.online_deployment_put"):
        for e in emulator.requests(route):
            target = "/".join(e.path.split("/")[-3:])
            lines.append(f"  {e.time:.3f} {route} {target} -> {e.status}")
    reads = Counter(e.status for e in emulator.requests("arm.online_deployment_get"))
    polls = Counter(e.status for e in emulator.requests("arm.mfe_operation"))
    lines.append(f"deployment reads by status: {dict(reads)}; operation polls: {dict(polls)}")
    tail = log.read_text(errors="replace").splitlines()[-120:] if log.exists() else []
    lines.append("workers' log (tail):")
    lines += [f"  {line}" for line in tail]
    return "\n".join(lines)


@contextmanager
def _explained(rt: Runtime, tenant_id: str, emulator: EmulatorHandle, log: Path) -> Iterator[None]:
    """On failure, say what happened: rows, attempts, Azure writes and the workers' log tail."""
    try:
        yield
    except AssertionError as exc:
        pytest.fail(f"{exc}\n{_diagnostics(rt, tenant_id, emulator, log)}", pytrace=True)


def test_a_worker_killed_mid_operation_is_resumed_without_a_duplicate_patch(
    world: World,
    settings: Settings,
    database: Database,
    fresh_emulator: EmulatorHandle,
    tmp_path: Path,
) -> None:
    fresh_emulator.set_limits(mms={"operation_duration_s": 1.5})
    box = fresh_emulator.sandbox()
    names = [f"svc-{i}" for i in range(3)]
    for name in names:
        box.add_service(name, compute_type="AKS", app_insights_enabled=False)
    rt = fast_runtime(settings, database, fresh_emulator)
    w = wire(world, rt, box)
    _discover(rt, w.workspace_id)
    policies.put_policy(rt, CLI, w.tenant, None, None, {"app_insights": True}, None, max_attempts=5)
    log = tmp_path / "workers.log"
    with _explained(rt, w.tenant_id, fresh_emulator, log):
        first = _worker(database, fresh_emulator, log, w.tenant_id)
        try:
            _until(
                lambda: any(e.status == 202 for e in fresh_emulator.requests("mms.service_patch")),
                PROCESS_DEADLINE_S,
                "the first worker's PATCH",
            )
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        orphaned = [op for op in operations_of(rt, w.tenant_id) if op.state == "running"]
        assert orphaned, "killed while holding leases"

        second = _worker(database, fresh_emulator, log, w.tenant_id)
        try:
            _until(
                lambda: settled(rt, w.tenant_id),
                PROCESS_DEADLINE_S,
                "convergence after the crash",
            )
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0, "the second worker did not stop cleanly"

        ops = operations_of(rt, w.tenant_id)
        assert {op.state for op in ops} == {"succeeded"}
        assert all(op.attempts <= op.max_attempts for op in ops)
        assert all(box.service(n)["appInsightsEnabled"] is True for n in names)
        patches = fresh_emulator.requests("mms.service_patch")
        assert {e.status for e in patches} == {202}  # no 409: never a second PATCH while one ran
        assert set(Counter(e.path.rsplit("/", 1)[-1] for e in patches).values()) == {1}


def test_a_worker_killed_mid_deployment_update_follows_the_async_operation_without_a_second_put(
    world: World,
    settings: Settings,
    database: Database,
    fresh_emulator: EmulatorHandle,
    tmp_path: Path,
) -> None:
    fresh_emulator.state.online.operation_duration_s = 1.5
    box = fresh_emulator.sandbox()
    names = [f"oe-{i}" for i in range(3)]
    for name in names:
        box.add_online_endpoint(name, compute_type="Managed" if name != "oe-2" else "Kubernetes")
        box.add_online_deployment(name, "blue")
    rt = fast_runtime(settings, database, fresh_emulator, call_timeout_s=10.0)
    w = wire(world, rt, box)
    _discover(rt, w.workspace_id)
    policies.put_policy(
        rt,
        CLI,
        w.tenant,
        None,
        None,
        {"app_insights": True, "model_data_collection": True},
        None,
        max_attempts=5,
    )
    log = tmp_path / "workers.log"
    with _explained(rt, w.tenant_id, fresh_emulator, log):
        first = _worker(database, fresh_emulator, log, w.tenant_id)
        try:
            _until(
                lambda: any(
                    e.status in (200, 201)
                    for e in fresh_emulator.requests("arm.online_deployment_put")
                ),
                PROCESS_DEADLINE_S,
                "the first worker's deployment PUT",
            )
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        killed_at = time.time()
        # Killed before converging: its leases are orphaned, or (a call timed out under load
        # after the PUT was accepted) the operation waits for a retry that must not PUT again.
        ops = operations_of(rt, w.tenant_id)
        unfinished = [o for o in ops if o.state in ("queued", "running")]
        assert unfinished, "killed before converging: some operation is unfinished"

        second = _worker(database, fresh_emulator, log, w.tenant_id)
        try:
            _until(
                lambda: settled(rt, w.tenant_id), PROCESS_DEADLINE_S, "convergence after the crash"
            )
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0, "the second worker did not stop cleanly"

        ops = operations_of(rt, w.tenant_id)
        assert {op.state for op in ops} == {"succeeded"}
        for name in names:
            props = box.online_deployment(name, "blue")["properties"]
            assert props["appInsightsEnabled"] is True
            assert props["dataCollector"]["collections"]["model_inputs"]["dataCollectionMode"] == (
                "Enabled"
            )
        puts = fresh_emulator.requests("arm.online_deployment_put")
        assert {e.status for e in puts} == {200}  # no 409: never a second PUT while one ran
        written = Counter(e.path for e in puts)
        assert set(written.values()) == {1}, "a deployment was written twice"
        assert len(puts) == len(names)
        # The second worker read every deployment (following a stored Azure operation to its end,
        # or deciding anew) and, above, wrote none a second time.
        read_after = {
            e.path.split("?")[0].split("/")[-3]
            for e in fresh_emulator.requests("arm.online_deployment_get")
            if e.time > killed_at and e.status == 200
        }
        assert read_after == set(names)
