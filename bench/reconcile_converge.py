"""Reconciler convergence: 1,000 drifted endpoints vs the sequential loop the source implies.

    .venv/bin/python -m bench.reconcile_converge [--endpoints 1000] [--baseline-sample 20]
    .venv/bin/python -m bench.reconcile_converge --endpoints 500 --online 500   # mixed v1/v2

``--online N`` adds N SDK v2 online deployments (App Insights off; endpoints of two deployments,
blue and green, half managed and half Kubernetes) to the same workspaces: the same policy
governs them through azure-ai-ml (a GET and a full PUT each, long-running, one deployment of an
endpoint at a time), and their PUTs spend the same subscription write budget as the MMS PATCHes.
The v2 baseline is the same sequential loop with azure-ai-ml's ARM client: GET, PUT, wait for
the operation with its poller (1 s interval), one deployment after another.

An emulator subprocess holds 10 tenants x 2 subscriptions x 1 workspace (``--endpoints`` web
services, App Insights off); every MMS call takes 100 ms, every Azure operation 2 s
(``--operation-s``), and ``--fault-rate`` of MMS calls answer 429 (Retry-After 1 s) or 500.
The service's database (SQLite) gets a tenant policy "App Insights on" for every tenant; one
reconciler then discovers the workspaces and applies the policy. Measured: time until every
operation ended, failed operations, and the highest accepted writes per second of any
subscription (the emulator's count). Baseline: ``Webservice(ws, n).update(
enable_app_insights=True)`` + ``wait_for_deployment`` one after another on a sample of
``--baseline-sample`` services (same latency, no injected errors, which only favours the
baseline), extrapolated to ``--endpoints``.

A ``phases:`` line splits the time to converge: until the first operation existed (the
workers' start, their SDK imports and the first discovery), the steady rate over the middle
80% of the targets (the part the CPU per target bounds: cores / CPU per target), and the rest.

CPU is read for each process on the cores: the service's (the bench process, or the
``--workers`` from their start), the emulator's and, with ``--postgres`` on this machine, the
database server's (its backends, ended ones included); the ``floor:`` line sets their sum
against the most CPU per target a 20 s convergence leaves on this machine's cores. With
``--online``, the next ``floor:`` line prices every Azure call of the run (the calls counted by
route, each at the CPU of one read through the adapter, client and emulator) and splits the
run's CPU into those calls and the rest (the service's own work, the database, discovery and
start-up). Another ``floor:`` line gives the write budget's bound, whatever the CPU: the
busiest subscription's targets, one write each in slots ``SLOT_MARGIN`` / rate apart, then one
``--operation-s`` operation. (Until attempts followed their Azure operations without a thread,
an attempt held its place in the tenant's cap, ``--tenant-cap``, for the whole operation: the
line read the attempts' durations back instead, and the busiest tenant's targets x
``--operation-s`` / ``--tenant-cap`` alone was 20 s, the target.)

Both trust what a deployment trusts (``--trust public``, the default): certifi's public roots
plus the emulator's CA in one bundle. ``--trust emulator`` (the emulator's CA alone, as every
run before 2026-12-01's eighth set) hides the cost of parsing the bundle on each new connection.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests
import yaml

from bench import postgres_cpu_s, postgres_server_pid, verdict
from service.config import ReconcilerSettings
from service.db.types import utcnow

TENANTS, SUBS_PER_TENANT = 10, 2
ONLINE_ROUTES = [
    "arm.online_endpoints_list",
    "arm.online_deployments_list",
    "arm.online_deployment_get",
    "arm.online_deployment_put",
    "arm.mfe_operation",
]


def _online(prefix: str, count: int, baseline: bool) -> list[dict[str, object]]:
    """Online endpoints holding ``count`` deployments (blue/green; baseline: blue only)."""
    per = 1 if baseline else 2
    endpoints = []
    for i in range((count + per - 1) // per):
        names = ["blue", "green"][: min(per, count - i * per)]
        endpoints.append(
            {
                "name": f"{prefix}-oe-{i:03d}",
                "compute_type": "Kubernetes" if i % 2 else "Managed",
                "deployments": [{"name": n, "app_insights_enabled": False} for n in names],
            }
        )
    return endpoints


def _fleet(path: Path, endpoints: int, baseline: int, online: int = 0) -> list[dict[str, str]]:
    """Write the fleet file; returns the tenants' ids and secrets."""
    per_ws = endpoints // (TENANTS * SUBS_PER_TENANT)
    online_per_ws = online // (TENANTS * SUBS_PER_TENANT)
    tenants, out = [], []
    for t in range(TENANTS):
        tid, cid, secret = str(uuid.uuid4()), str(uuid.uuid4()), f"bench-secret-{t}"
        subs = []
        for s in range(SUBS_PER_TENANT + (1 if t == 0 else 0)):
            is_baseline = s == SUBS_PER_TENANT
            count = baseline if is_baseline else per_ws
            prefix = "base" if is_baseline else f"svc{t}{s}"
            sid = str(uuid.uuid4())
            services = [
                {
                    "name": f"{prefix}-{i:03d}",
                    "compute_type": "AKS" if i % 2 else "ACI",
                    "app_insights_enabled": False,
                }
                for i in range(count)
            ]
            ws = {
                "name": f"ws-{t}-{s}",
                "resource_group": "rg-bench",
                "location": "westeurope",
                "app_insights": True,
                "log_analytics_workspace_id": False,
                "services": services,
                "online_endpoints": _online(
                    "base" if is_baseline else f"on{t}{s}",
                    (baseline if online else 0) if is_baseline else online_per_ws,
                    is_baseline,
                ),
            }
            subs.append({"id": sid, "name": f"sub-{t}-{s}", "workspaces": [ws]})
            out.append(
                {
                    "tenant": tid,
                    "client_id": cid,
                    "secret": secret,
                    "subscription": sid,
                    "workspace": ws["name"],
                    "baseline": str(is_baseline),
                }
            )
        tenants.append(
            {
                "id": tid,
                "name": f"tenant-{t}",
                "subscriptions": subs,
                "service_principals": [{"client_id": cid, "secret": secret}],
            }
        )
    path.write_text(yaml.safe_dump({"tenants": tenants}))
    return out


def _start_emulator(
    fleet: Path, tls: Path, operation_s: float
) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "--port",
            "0",
            "--fleet",
            str(fleet),
            "--tls-dir",
            str(tls),
            "--operation-duration",
            f"{operation_s:g}",
            "--seed",
            "7",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip().split("=", 1)[1]
    ca = proc.stdout.readline().strip().split("=", 1)[1]
    return proc, url, ca


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--baseline-sample", type=int, default=20)
    parser.add_argument("--online", type=int, default=0, help="SDK v2 deployments to add")
    parser.add_argument("--fault-rate", type=float, default=0.10)
    parser.add_argument(
        "--operation-s",
        type=float,
        default=2.0,
        help="how long each Azure update operation runs (Azure's own take minutes)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=ReconcilerSettings.worker_threads,
        help="reconciler threads, shared among --workers (default: RECONCILER_THREADS's)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run N `python -m service.worker` processes (needs --postgres) instead of one "
        "reconciler in this process",
    )
    parser.add_argument(
        "--tenant-cap", type=int, default=10, help="operations running at once per tenant"
    )
    parser.add_argument(
        "--trust",
        choices=("public", "emulator"),
        default="public",
        help="the CA bundle the service and the baseline trust: certifi's public roots plus the "
        "emulator's CA, as a deployment's (default), or the emulator's CA alone",
    )
    parser.add_argument("--progress", action="store_true", help="print operation states")
    parser.add_argument(
        "--postgres",
        metavar="DSN",
        help="the service's database in a throwaway database on this PostgreSQL server "
        "(e.g. postgresql://postgres@127.0.0.1:5432/test) instead of SQLite",
    )
    args = parser.parse_args()
    spread = TENANTS * SUBS_PER_TENANT
    for name in ("endpoints", "online"):
        if getattr(args, name) % spread:
            # The fleet holds the same number in each of the workspaces: any remainder would
            # never be created, and the run would wait for it for ever.
            parser.error(f"--{name} must be a multiple of {spread} (one workspace a subscription)")
    if args.workers and not args.postgres:
        parser.error("--workers needs --postgres (several processes on SQLite serialise)")

    # SIGTERM ends the run through the ``finally`` below: the emulator stops, the database goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    os.environ.setdefault("HOME", str(work))
    os.environ["AZURE_CONFIG_DIR"] = str(work / ".azure")
    os.environ["AZUREML_CURRENT_CLOUD"] = "AzureCloud"
    rows = _fleet(work / "fleet.yaml", args.endpoints, args.baseline_sample, args.online)
    proc, url, ca = _start_emulator(work / "fleet.yaml", work / "tls", args.operation_s)
    if args.trust == "public":
        # What a deployment trusts: the public roots (certifi's, the SDKs' default) and here the
        # emulator's CA. A bundle of one certificate hid what each new connection costs.
        import certifi

        bundle = work / "trust.pem"
        bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + Path(ca).read_bytes())
        ca = str(bundle)
    os.environ["REQUESTS_CA_BUNDLE"] = ca
    admin = requests.Session()
    admin.verify = ca
    try:
        return _run(args, work, rows, url, ca, admin, proc.pid)
    finally:
        _stop_workers(_WORKERS)
        proc.terminate()
        proc.wait(10)
        if args.postgres:
            _drop_database(args.postgres)


_WORKERS: list[subprocess.Popen[bytes]] = []  # stopped however the run ends
_PG_NAME = f"amlcp_bench_{uuid.uuid4().hex[:12]}"


def _database(dsn: str | None, work: Path) -> str:
    """SQLite in the work directory, or a new database on the PostgreSQL server ``dsn``."""
    if not dsn:
        return f"sqlite:///{work / 'service.db'}"
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{_PG_NAME}"')
    base = dsn.rpartition("/")[0]
    return "postgresql+psycopg" + f"{base}/{_PG_NAME}"[len("postgresql") :]


def emulator_azure(url: str, ca: str) -> Any:
    """The service's Azure settings for an emulator at ``url`` trusting ``ca``."""
    from service.config import AzureSettings

    return AzureSettings(
        authority_host=url,
        resource_manager=url,
        ca_bundle=ca,
        instance_discovery=False,
        managed_identity=False,
    )


def _drop_database(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{_PG_NAME}" WITH (FORCE)')


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sys_s() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def _process_cpu_s(pid: int, *, system: bool = False) -> float:
    """User + system (or only system) CPU seconds of another process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[12]) if system else int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _run(
    args: argparse.Namespace,
    work: Path,
    rows: list[dict[str, str]],
    url: str,
    ca: str,
    admin: requests.Session,
    emulator_pid: int,
) -> int:
    from cryptography.fernet import Fernet

    from bench.reconcile_baseline import sequential_online_sample, sequential_sample
    from service.bootstrap import build_runtime
    from service.config import Settings
    from service.db import migrate
    from service.domain.access import CLI_PRINCIPAL
    from service.services import credentials, policies, tenants, workspaces
    from service.services.context import CallContext
    from service.worker.reconciler import Reconciler

    db_url = _database(args.postgres, work)
    migrate.upgrade(db_url)
    settings = Settings(
        database_url=db_url,
        credential_keys=(Fernet.generate_key().decode(),),
        azure=emulator_azure(url, ca),
        reconciler=ReconcilerSettings(
            interval_s=0.1,
            worker_threads=args.threads,
            tenant_concurrency=args.tenant_cap,
            subscription_writes_per_s=10,
            poll_interval_s=1.0,
            retry_base_s=0.5,
            retry_max_s=10,
            call_timeout_s=15,
            lease_s=60,
            max_attempts=5,
        ),
    )
    rt = build_runtime(settings)
    ctx = CallContext(CLI_PRINCIPAL)
    slugs: dict[str, str] = {}
    for row in rows:
        if row["baseline"] == "True":
            continue
        if row["tenant"] not in slugs:
            slug = f"t-{len(slugs)}"
            tenants.create_tenant(
                rt, ctx, {"slug": slug, "display_name": slug, "entra_tenant_id": row["tenant"]}
            )
            slugs[row["tenant"]] = slug
        slug = slugs[row["tenant"]]
        credentials.put_credential(
            rt,
            ctx,
            slug,
            {
                "kind": "service_principal",
                "client_id": row["client_id"],
                "client_secret": row["secret"],
            },
            None,
        )
        workspaces.create_workspace(
            rt,
            ctx,
            slug,
            {
                "slug": row["workspace"],
                "subscription_id": row["subscription"],
                "resource_group": "rg-bench",
                "workspace_name": row["workspace"],
            },
        )
    for slug in slugs.values():
        policies.put_policy(rt, ctx, slug, None, None, {"app_insights": True}, None, max_attempts=5)

    admin.put(f"{url}/_admin/limits", json={"arm_throttle": {"enabled": True}}).raise_for_status()
    families = ["mms."] + (ONLINE_ROUTES if args.online else [])
    latency_ids = []
    for family in families:
        r = admin.post(
            f"{url}/_admin/faults", json={"kind": "latency", "route": family, "latency_s": 0.1}
        )
        r.raise_for_status()
        latency_ids.append(r.json()["id"])
    fault_ids = []
    for family in families:
        for kind, extra in (("throttle", {"retry_after_s": 1}), ("status", {"status": 500})):
            r = admin.post(
                f"{url}/_admin/faults",
                json={"kind": kind, "route": family, "probability": args.fault_rate / 2, **extra},
            )
            fault_ids.append(r.json()["id"])

    admin.delete(f"{url}/_admin/requests").raise_for_status()  # count the run's calls only
    cpu_before, sys_before = _cpu_s(), _sys_s()
    emulator_before = _process_cpu_s(emulator_pid)
    postmaster = postgres_server_pid(args.postgres) if args.postgres else None
    database_before = postgres_cpu_s(postmaster) if postmaster else None
    transactions_before = _transactions(args.postgres) if args.postgres else None
    started = last_print = time.monotonic()
    started_at = utcnow()
    reconciler = None if args.workers else Reconciler(rt, "bench")
    workers = _start_workers(args, settings, work) if args.workers else []
    total = args.endpoints + args.online
    progress: list[tuple[float, int, int]] = []  # (seconds, operations, finished)
    while time.monotonic() - started < 1800:
        in_flight = reconciler.reconcile_once().in_flight if reconciler else -1
        if time.monotonic() - last_print > 1:
            last_print = time.monotonic()
            states = _states(rt)
            if args.progress:
                print(f"  t={last_print - started:5.1f}s {states} in_flight={in_flight}")
            finished = sum(states.get(s, 0) for s in ("succeeded", "failed", "cancelled"))
            active = states.get("queued", 0) + states.get("running", 0)
            progress.append((last_print - started, finished + active, finished))
            # A later discovery may queue a second operation for a target (it then finds
            # nothing to do): converged means every target had one and none is active.
            if finished >= total and active == 0:
                break
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    # Workers' CPU from their start (imports included, like the in-process reconciler's first
    # use of the SDKs), plus this process's (the progress queries, when there are workers).
    service_cpu = _cpu_s() - cpu_before + sum(_process_cpu_s(w.pid) for w in workers)
    service_sys = _sys_s() - sys_before + sum(_process_cpu_s(w.pid, system=True) for w in workers)
    emulator_cpu = _process_cpu_s(emulator_pid) - emulator_before
    # The database server shares the cores too (its backends' CPU, the ended ones included).
    database_cpu = (
        postgres_cpu_s(postmaster) - database_before
        if postmaster and database_before is not None
        else None
    )
    if reconciler is not None:
        reconciler.close()
    _stop_workers(workers)
    transactions = None
    if transactions_before is not None:
        rt.database.engine.dispose()  # its backends end, and report their counts on the way out
        after = _transactions(args.postgres)
        transactions = tuple(a - b for a, b in zip(after, transactions_before, strict=True))
    mms_routes: dict[str, int] = {}
    for entry in admin.get(f"{url}/_admin/requests", params={"route": "mms."}).json()["value"]:
        mms_routes[entry["route"]] = mms_routes.get(entry["route"], 0) + 1
    calls = {
        route: len(admin.get(f"{url}/_admin/requests", params={"route": route}).json()["value"])
        for route in ["mms.", *(ONLINE_ROUTES if args.online else [])]
    }
    states = _states(rt)
    done, failed = states.get("succeeded", 0), states.get("failed", 0)
    for error in _errors(rt):
        print(f"  failed: {error}")
    for line in _slowest(rt, started_at):
        print(f"  last: {line}")
    for fault_id in fault_ids:
        admin.delete(f"{url}/_admin/faults/{fault_id}")
    writes = admin.get(f"{url}/_admin/stats/arm-writes").json()["maxWritesPerSecond"]
    for fault_id in latency_ids:
        admin.delete(f"{url}/_admin/faults/{fault_id}")
    read_cpu = _read_cost(rt, emulator_pid, online=False)
    online_read_cpu = _read_cost(rt, emulator_pid, online=True) if args.online else (0.0, 0.0)
    injected = 0
    for family in families:
        served = admin.get(f"{url}/_admin/requests", params={"route": family}).json()
        entries = served.get("value", served if isinstance(served, list) else [])
        injected += sum(1 for e in entries if e.get("status") in (429, 500))

    base = next(r for r in rows if r["baseline"] == "True")
    # The SDKs as shipped read the bundle the user named (the service's adapter pointed the
    # variable at its hashed directory meanwhile).
    os.environ["REQUESTS_CA_BUNDLE"] = ca
    per_endpoint = sequential_sample(url, ca, base, args.baseline_sample)
    per_online = (
        sequential_online_sample(url, ca, base, args.baseline_sample) if args.online else 0.0
    )
    baseline_total = per_endpoint * args.endpoints + per_online * args.online
    print(
        f"database={'postgresql' if args.postgres else 'sqlite'} "
        f"targets={total} web_services={args.endpoints} online_deployments={args.online} "
        f"tenants={TENANTS} subscriptions={TENANTS * SUBS_PER_TENANT} "
        f"azure_latency_ms=100 operation_s={args.operation_s:g} fault_rate={args.fault_rate:.0%}"
    )
    print(
        f"reconciler: converged_s={elapsed:.1f} succeeded={done} failed={failed} "
        f"injected_errors_answered={injected} threads={args.threads} "
        f"workers={args.workers or 'in-process'} tenant_cap={args.tenant_cap}"
    )
    print(_phases(progress, total, elapsed))
    max_rate = max(writes.values()) if writes else 0
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    registry = REGISTRY
    if args.workers:  # the workers' counts, from the files they shared (they have ended)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(work / "metrics"))

    def given_up(reason: str) -> int:
        labels = {"reason": reason}
        return int(registry.get_sample_value("amlcp_write_slots_missed_total", labels) or 0)

    missed = " ".join(f"{r}:{given_up(r)}" for r in ("late", "read_failed", "read_slow"))
    print(
        f"write_rate: max_per_subscription_per_s={max_rate} budget=10 "
        f"within_budget={max_rate <= 10} write_slots_given_up={missed}"
    )
    print(
        f"baseline: sequential_per_endpoint_s={per_endpoint:.2f} "
        f"sequential_per_online_deployment_s={per_online:.2f} (samples of "
        f"{args.baseline_sample}) extrapolated_total_s={baseline_total:.0f}"
    )
    database = (
        "n/a (SQLite: in the service's process)"
        if not args.postgres
        else "n/a (the server's processes are not readable here)"
        if database_cpu is None
        else f"{1000 * database_cpu / total:.1f}"
    )
    print(
        f"cpu: service_ms_per_target={1000 * service_cpu / total:.1f} "
        f"emulator_ms_per_target={1000 * emulator_cpu / total:.1f} "
        f"database_ms_per_target={database} "
        f"(service {service_cpu:.1f} s of which system {service_sys:.1f} s, "
        f"emulator {emulator_cpu:.1f} s, database {database_cpu or 0:.1f} s)"
    )
    if transactions is not None:
        commits, rollbacks, sessions = transactions
        print(
            f"database: transactions_per_target={(commits + rollbacks) / total:.1f} "
            f"(committed {commits / total:.1f}, rolled back {rollbacks / total:.1f}: each "
            "statement of a read-only or single-statement unit is a transaction of its own; "
            "this process's progress reads, one a second, included) "
            f"connections_opened={sessions}"
        )
    per_v1 = calls.pop("mms.") / max(1, args.endpoints)
    per_v2 = {r.split(".", 1)[1]: n / max(1, args.online) for r, n in calls.items()}
    print(
        f"calls: mms_per_web_service={per_v1:.2f} "
        + " ".join(f"{r}_per_deployment={n:.2f}" for r, n in per_v2.items())
    )
    print(
        "calls: mms_by_route_per_web_service "
        + " ".join(
            f"{r.split('.', 1)[1]}={n / max(1, args.endpoints):.2f}"
            for r, n in sorted(mms_routes.items())
        )
    )
    client_ms, emulator_ms = read_cpu
    online_client_ms, online_emulator_ms = online_read_cpu
    cores = os.cpu_count() or 1
    v1_calls_cpu = per_v1 * args.endpoints * (client_ms + emulator_ms) / 1000
    sdk_floor = v1_calls_cpu / cores
    per_v2_calls = sum(per_v2.values())
    calls_cpu = (
        v1_calls_cpu + per_v2_calls * args.online * (online_client_ms + online_emulator_ms) / 1000
    )
    run_cpu = service_cpu + emulator_cpu + (database_cpu or 0.0)
    print(
        f"floor: one web service read through the adapter costs client_cpu_ms={client_ms:.2f} "
        f"emulator_cpu_ms={emulator_ms:.2f}; the MMS calls alone ({per_v1:.2f} per web "
        f"service) need >= {sdk_floor:.1f} s on {cores} cores, this run's service + emulator "
        f"{'+ database ' if database_cpu is not None else ''}CPU >= {run_cpu / cores:.1f} s; "
        f"converging in 20 s on {cores} cores allows <= {20_000 * cores / total:.0f} ms of CPU "
        f"per target, this run used {1000 * run_cpu / total:.1f}"
    )
    if args.online:
        print(
            f"floor: one online deployment read costs client_cpu_ms={online_client_ms:.2f} "
            f"emulator_cpu_ms={online_emulator_ms:.2f}; every Azure call of the run at a "
            f"read's cost ({per_v1:.2f} per web service, {per_v2_calls:.2f} per deployment) "
            f"is {1000 * calls_cpu / total:.1f} ms of CPU per target, >= "
            f"{calls_cpu / cores:.1f} s on {cores} cores with nothing else; the rest of the "
            f"run's CPU (the service's own work, the database, discovery, start-up) is "
            f"{1000 * (run_cpu - calls_cpu) / total:.1f} ms per target"
        )
    budget_floor, most_writes, rate, margin = _budget_floor(rt, args.operation_s)
    print(
        f"floor: the write budget: the busiest subscription's {most_writes} writes, one slot "
        f"each {margin:g} / {rate:g} s apart, then one {args.operation_s:g} s Azure "
        f"operation: >= {budget_floor:.1f} s, whatever the CPU (since the attempts follow their "
        "Azure operations without a thread, the tenants' cap holds a place only while an "
        "attempt reads and writes)"
    )
    ratio = baseline_total / elapsed
    verdict("converged_s", elapsed, "<=20", elapsed <= 20)
    verdict("failed_ops", failed, "=0", failed == 0)
    verdict("max_writes_per_subscription_s", max_rate, "<=10", max_rate <= 10)
    print(
        f"ratio: {ratio:.0f}x faster  target>=50x met={ratio >= 50}  failed_ops={failed} "
        f"target=0 met={failed == 0}"
    )
    return 0


def _start_workers(
    args: argparse.Namespace, settings: Any, work: Path
) -> list[subprocess.Popen[bytes]]:
    """``--workers`` reconciler processes on the service's database, the threads shared."""
    cfg = settings.reconciler
    (work / "metrics").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "CREDENTIAL_KEYS": ",".join(settings.credential_keys),
        "AZURE_AUTHORITY_HOST": settings.azure.authority_host,
        "AZURE_RESOURCE_MANAGER": settings.azure.resource_manager,
        "AZURE_CA_BUNDLE": settings.azure.ca_bundle or "",
        "AZURE_MANAGED_IDENTITY": "false",
        "LOG_LEVEL": "WARNING",
        # Their metrics (the write slots given up) in files this process reads once they ended.
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
        # The pace of this process's own loop (a tick, then 0.2 s): each tick queries the
        # database, and N workers tick N times as often.
        "RECONCILER_INTERVAL_S": "0.2",
        "RECONCILER_THREADS": str(max(1, args.threads // args.workers)),
        "TENANT_CONCURRENCY": str(cfg.tenant_concurrency),
        "SUBSCRIPTION_WRITES_PER_S": str(cfg.subscription_writes_per_s),
        "OPERATION_POLL_INTERVAL_S": str(cfg.poll_interval_s),
        "RETRY_BASE_S": str(cfg.retry_base_s),
        "RETRY_MAX_S": str(cfg.retry_max_s),
        "AZURE_CALL_TIMEOUT_S": str(cfg.call_timeout_s),
        "OPERATION_LEASE_S": str(cfg.lease_s),
        "OPERATION_MAX_ATTEMPTS": str(cfg.max_attempts),
    }
    for i in range(args.workers):
        _WORKERS.append(
            subprocess.Popen(
                [sys.executable, "-m", "service.worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(work / f"worker-{i}.log").open("wb"),
            )
        )
    return list(_WORKERS)


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for proc in workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in workers:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _errors(rt: Any) -> list[str]:
    """The last error of each operation that did not succeed, with its attempts' outcomes."""
    from sqlalchemy import select

    from service.db.models import Operation

    with rt.uow() as uow:
        ops = uow.session.execute(
            select(Operation.id, Operation.endpoint_name, Operation.last_error)
            .where(Operation.state != "succeeded")
            .limit(10)
        ).all()
        out = []
        for op_id, name, error in ops:
            tried = "; ".join(
                f"{a.outcome}{'' if a.charged else ' (free)'}: {(a.error or '')[:80]}"
                for a in _attempts(uow.session, op_id)
            )
            out.append(f"{name}: {error} [attempts: {tried}]")
        return out


def _slowest(rt: Any, started_at: Any, count: int = 3) -> list[str]:
    """The ``count`` operations that finished last (what the tail waited for): each attempt's
    start and end in seconds since the run started, its outcome, Azure's status and its error,
    and when the next attempt was allowed."""
    from sqlalchemy import select

    from service.db.models import Operation

    def at(moment: Any) -> str:
        return "-" if moment is None else f"{(moment - started_at).total_seconds():.1f}"

    with rt.uow(read_only=True) as uow:
        ops = uow.session.execute(
            select(Operation.id, Operation.endpoint_name, Operation.created_at)
            .where(Operation.finished_at.is_not(None))
            .order_by(Operation.finished_at.desc())
            .limit(count)
        ).all()
        out = []
        for op_id, name, created in ops:
            tried = "; ".join(
                f"{at(a.started_at)}-{at(a.finished_at)} s {a.outcome}"
                f"{'' if a.azure_status is None else f' {a.azure_status}'}"
                f"{'' if a.retry_at is None else f' retry at {at(a.retry_at)}'}"
                f"{'' if not a.error else f': {a.error[:60]}'}"
                for a in _attempts(uow.session, op_id)
            )
            out.append(f"{name} queued at {at(created)} s [{tried}]")
        return out


def _attempts(session: Any, operation_id: str) -> list[Any]:
    """The attempts of one operation, in order (for the run's report lines)."""
    from sqlalchemy import select

    from service.db.models import OperationAttempt

    return list(
        session.scalars(
            select(OperationAttempt)
            .where(OperationAttempt.operation_id == operation_id)
            .order_by(OperationAttempt.number)
        )
    )


def _read_cost(
    rt: Any, emulator_pid: int, *, online: bool, reads: int = 200
) -> tuple[float, float]:
    """CPU ms of one read of a web service (azureml-core: a new requests session, so a TLS
    handshake, per call) or, ``online``, of an online deployment (azure-ai-ml's ARM client, its
    connections kept alive) through the service's adapter, this process's and the emulator's,
    read by 10 threads at once with no injected latency or faults: the SDK's own cost per call."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import select

    from service.db.models import Endpoint, Workspace
    from service.services.discovery import target_of

    kind = Endpoint.online_endpoint.is_not(None) if online else Endpoint.online_endpoint.is_(None)
    with rt.uow() as uow:
        ws = uow.session.scalars(
            select(Workspace)
            .where(Workspace.id.in_(select(Endpoint.workspace_id).where(kind)))
            .limit(1)
        ).one()
        names = uow.session.scalars(
            select(Endpoint.name).where(Endpoint.workspace_id == ws.id, kind).limit(10)
        ).all()
        uow.session.expunge(ws)
    target = target_of(rt, ws)
    for name in names:  # warm: the workspace object, the token, the connections
        rt.ml.get_service(target, name)
    cpu0, emulator0 = _cpu_s(), _process_cpu_s(emulator_pid)
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda i: rt.ml.get_service(target, names[i % len(names)]), range(reads)))
    return (
        1000 * (_cpu_s() - cpu0) / reads,
        1000 * (_process_cpu_s(emulator_pid) - emulator0) / reads,
    )


def _transactions(dsn: str) -> tuple[int, int, int]:
    """(committed, rolled back) transactions and sessions (connections) of the run's database so
    far, as PostgreSQL counts them (``pg_stat_database``: a backend reports its counts when idle,
    at most a second late, and when it ends)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, sessions FROM pg_stat_database WHERE datname = %s",
            (_PG_NAME,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def _budget_floor(rt: Any, operation_s: float) -> tuple[float, int, float, float]:
    """(the least wall time the write budget allows, the most targets of one subscription, the
    budget's rate, the slots' margin): every drifted target needs one write, a subscription's
    writes take slots ``SLOT_MARGIN / rate`` apart, and the last one's operation must end."""
    from collections import Counter

    from sqlalchemy import select

    from service.db.models import Operation, Workspace
    from service.services.db_writes import SLOT_MARGIN

    with rt.uow() as uow:
        targets = uow.session.execute(
            select(Workspace.subscription_id, Operation.workspace_id, Operation.endpoint_name)
            .join(Workspace, Workspace.id == Operation.workspace_id)
            .distinct()
        ).all()
    rate = rt.settings.reconciler.subscription_writes_per_s
    most = max(Counter(sub for sub, _, _ in targets).values(), default=0)
    return most * SLOT_MARGIN / rate + operation_s, most, rate, SLOT_MARGIN


def _phases(progress: list[tuple[float, int, int]], total: int, elapsed: float) -> str:
    """Where the time to converge went, from the progress read about once a second: until the
    first operation existed (the workers' start, their SDK imports, the first discovery's
    lists), the middle 80% of the targets (the steady rate, the figure the CPU per target
    bounds) and the rest."""

    def first(pred: Any) -> float | None:
        return next((t for t, ops, done in progress if pred(ops, done)), None)

    queued = first(lambda ops, done: ops > 0)
    tenth = first(lambda ops, done: done >= total // 10)
    ninetieth = first(lambda ops, done: done >= total * 9 // 10)
    if queued is None or tenth is None or ninetieth is None or ninetieth <= tenth:
        return "phases: n/a (too few progress readings)"
    rate = (total * 9 // 10 - total // 10) / (ninetieth - tenth)
    return (
        f"phases: first_operation_s={queued:.1f} (workers' start, SDK imports, first discovery)"
        f" 10%_done_s={tenth:.1f} 90%_done_s={ninetieth:.1f} steady_targets_per_s={rate:.1f}"
        f" last_10%_s={elapsed - ninetieth:.1f} (progress read every ~1 s)"
    )


def _states(rt: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from service.db.models import Operation

    with rt.uow() as uow:
        rows = uow.session.execute(select(Operation.state, func.count()).group_by(Operation.state))
        return {state: int(n) for state, n in rows}


if __name__ == "__main__":
    sys.exit(main())
