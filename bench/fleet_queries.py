"""P4 (issue 16): list 10,000 endpoints 200 per page, and the compliance summary of 10,000
endpoints, on PostgreSQL, through the HTTP service and in-process, against the database alone.

    .venv/bin/python -m bench.fleet_queries [--endpoints 10000] [--page 200] [--passes 3]
        [--summaries 10] [--postgres postgresql://postgres@127.0.0.1:5432/test]

Creates a throwaway database on the PostgreSQL server (dropped at the end), migrates it, and
writes one tenant with two workspaces: ``big`` holds ``--endpoints`` endpoints (half v1 web
services, half v2 deployments), ``small`` 50 more; a tenant policy, a workspace policy and 100
endpoint policies; 2,000 finished operations (one in ten failed) and 100 active ones, so every
compliance state occurs. Then:

- **listing**: ``--passes`` walks of every page of ``GET .../workspaces/big/endpoints?limit=200``
  following ``next_cursor``, through gunicorn started as ``make run`` starts it (its config,
  ``wsgi:app``, 2 gevent workers; no reconciler) on plain HTTP with a keep-alive session, and
  in-process through Flask's test client. Per page: p50/p99 wall time and the service's CPU per
  page (the gunicorn workers' ``/proc`` times; the in-process figure is this process's CPU),
  and in-process the SQL statements sent per page (machine-independent).
  Baseline: the same keyset page query sent straight to PostgreSQL with psycopg (what the
  database alone costs). Target: p99 <= 20 ms per page over HTTP.
- **compliance**: ``--summaries`` requests of ``GET /v1/tenants/<t>/compliance`` (HTTP and
  in-process), against the equivalent aggregate SQL alone (the effective policy resolved in
  SQL, counts per workspace and state). Target: <= 100 ms (p50 over HTTP; p99 printed too).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import FULL_COLLECTIONS, cpu_of, freeze_heap, service_cli, settle, worker_pids

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PAGE_TARGET_MS = 20.0
SUMMARY_TARGET_MS = 100.0

PAGE_SQL = """
SELECT * FROM endpoints
WHERE workspace_id = %(ws)s AND vanished_at IS NULL AND id > %(after)s
ORDER BY id LIMIT %(limit)s
"""
# The compliance summary in SQL alone: each live endpoint's effective app_insights and
# model_data_collection (endpoint > workspace > tenant), its active and last finished operation,
# and counts per workspace of compliant / drifted / pending / failed. What the database costs
# for the same answer, without the per-state reasons or the offender lists.
SUMMARY_SQL = """
WITH pol AS (
  SELECT scope, workspace_id, endpoint_name, app_insights, model_data_collection
  FROM policies WHERE tenant_id = %(t)s
), eff AS (
  SELECT e.workspace_id, e.name, e.kind, e.app_insights_enabled, e.data_collection_enabled,
    COALESCE(pe.app_insights, pw.app_insights, pt.app_insights) AS want_ai,
    COALESCE(pe.model_data_collection, pw.model_data_collection, pt.model_data_collection)
      AS want_dc
  FROM endpoints e
  LEFT JOIN pol pt ON pt.scope = 'tenant'
  LEFT JOIN pol pw ON pw.scope = 'workspace' AND pw.workspace_id = e.workspace_id
  LEFT JOIN pol pe ON pe.scope = 'endpoint' AND pe.workspace_id = e.workspace_id
    AND pe.endpoint_name = e.name
  WHERE e.tenant_id = %(t)s AND e.vanished_at IS NULL
), ops AS (
  SELECT DISTINCT ON (workspace_id, endpoint_name) workspace_id, endpoint_name, state
  FROM operations WHERE tenant_id = %(t)s
  ORDER BY workspace_id, endpoint_name, (state IN ('queued', 'running')) DESC, created_at DESC
)
SELECT eff.workspace_id,
  CASE
    WHEN ops.state IN ('queued', 'running') THEN 'pending'
    WHEN (want_ai IS NOT NULL AND want_ai IS DISTINCT FROM app_insights_enabled)
      OR (want_dc IS NOT NULL AND kind <> 'aci'
          AND want_dc IS DISTINCT FROM data_collection_enabled)
      THEN CASE WHEN ops.state = 'failed' THEN 'failed' ELSE 'drifted' END
    ELSE 'compliant'
  END AS state, count(*)
FROM eff LEFT JOIN ops ON ops.workspace_id = eff.workspace_id AND ops.endpoint_name = eff.name
GROUP BY 1, 2
"""


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the database -----------------------------------------------------------------------------
@contextmanager
def throwaway_database(dsn: str) -> Iterator[str]:
    import psycopg

    name = f"amlcp_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{dsn.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlalchemy_url(dsn: str) -> str:
    return "postgresql+psycopg" + dsn[len("postgresql") :]


def seed(url: str, endpoints: int) -> dict[str, str]:
    """The fleet (see the module docstring). Returns the ids the benchmark needs."""
    from service.db.models import Endpoint, Operation, Policy, Tenant, Workspace
    from service.db.session import Database
    from service.domain.ids import new_id

    rng = random.Random(16)
    db = Database(url)
    now = datetime.now(UTC)
    with db.unit_of_work() as uow:
        s = uow.session
        tenant = Tenant(slug="fleet", display_name="Fleet", entra_tenant_id=str(uuid.uuid4()))
        s.add(tenant)
        s.flush()
        spaces = []
        for slug in ("big", "small"):
            ws = Workspace(
                tenant_id=tenant.id,
                slug=slug,
                subscription_id=str(uuid.uuid4()),
                resource_group="rg",
                workspace_name=slug,
            )
            s.add(ws)
            spaces.append(ws)
        s.flush()
        rows: list[dict[str, Any]] = []
        for ws, count in ((spaces[0], endpoints), (spaces[1], 50)):
            for i in range(count):
                v2 = i % 2 == 1
                name = f"ep{i // 4:05d}.blue{i % 4}" if v2 else f"svc{i:05d}"
                rows.append(
                    {
                        "id": new_id(),
                        "workspace_id": ws.id,
                        "tenant_id": tenant.id,
                        "name": name,
                        "kind": "managed_online" if v2 else ("aks" if i % 3 else "aci"),
                        "compute_type": "Managed" if v2 else ("AKS" if i % 3 else "ACI"),
                        "online_endpoint": name.split(".")[0] if v2 else None,
                        "deployment": name.split(".")[1] if v2 else None,
                        "state": "Healthy",
                        "app_insights_enabled": rng.random() < 0.7,
                        "data_collection_enabled": rng.random() < 0.5,
                        "scoring_uri": f"https://{name}.example/score",
                        "azure_updated_at": now,
                        "observed_at": now,
                        "vanished_at": now if i % 97 == 0 else None,
                        "version": 1,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        s.execute(Endpoint.__table__.insert(), rows)
        policies = [
            Policy(tenant_id=tenant.id, scope="tenant", scope_key="tenant", app_insights=True),
            Policy(
                tenant_id=tenant.id,
                workspace_id=spaces[1].id,
                scope="workspace",
                scope_key=f"workspace:{spaces[1].id}",
                model_data_collection=True,
            ),
        ]
        for r in rows[:400:4]:
            policies.append(
                Policy(
                    tenant_id=tenant.id,
                    workspace_id=r["workspace_id"],
                    endpoint_name=r["name"],
                    scope="endpoint",
                    scope_key=f"endpoint:{r['workspace_id']}:{r['name']}",
                    app_insights=False,
                )
            )
        s.add_all(policies)
        ops = []
        for n, r in enumerate(rng.sample(rows, 2100)):
            state = "running" if n < 100 else ("failed" if n % 10 == 0 else "succeeded")
            ops.append(
                {
                    "id": new_id(),
                    "tenant_id": tenant.id,
                    "workspace_id": r["workspace_id"],
                    "endpoint_name": r["name"],
                    "kind": "apply_policy",
                    "desired": {"app_insights": True},
                    "cause": "policy_change",
                    "state": state,
                    "attempts": 1,
                    "max_attempts": 5,
                    "fence": 1,
                    "created_by": "bench",
                    "version": 1,
                    "created_at": now - timedelta(seconds=n),
                    "updated_at": now,
                    "finished_at": None if state == "running" else now,
                }
            )
        s.execute(Operation.__table__.insert(), ops)
        uow.commit()
        ids = {"tenant": tenant.id, "big": spaces[0].id}
    with db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")  # what autovacuum would have done by now
        conn.commit()
    db.dispose()
    return ids


def admin_key(env: dict[str, str]) -> str:
    return service_cli(env, "keys", "create", "--name", "bench", "--role", "admin")


# -- measurements ------------------------------------------------------------------------------
LIST_PATH = "/v1/tenants/fleet/workspaces/big/endpoints"
SUMMARY_PATH = "/v1/tenants/fleet/compliance"


def walk(get: Callable[[str], dict[str, Any]], page: int) -> tuple[list[float], int]:
    """Every page once; the time of each and the number of items seen."""
    times, items, cursor = [], 0, None
    while True:
        path = f"{LIST_PATH}?limit={page}" + (f"&cursor={cursor}" if cursor else "")
        t0 = time.perf_counter()
        body = get(path)
        times.append(time.perf_counter() - t0)
        items += len(body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            return times, items


def measure(
    label: str,
    get: Callable[[str], dict[str, Any]],
    cpu: Callable[[], float],
    args: argparse.Namespace,
    statements: Callable[[], int] | None = None,
) -> dict[str, float]:
    """``statements``: how many SQL statements the service has sent so far (in-process only)."""
    walk(get, args.page)  # warm-up pass: connections, caches, the first compiled statements
    freeze_heap()
    full0, full_s0 = FULL_COLLECTIONS.count, FULL_COLLECTIONS.seconds
    times: list[float] = []
    c0, s0 = cpu(), statements() if statements else 0
    for _ in range(args.passes):
        t, items = walk(get, args.page)
        times += t
    page_cpu = (cpu() - c0) / len(times)
    page_statements = ((statements() - s0) / len(times)) if statements else None
    get(SUMMARY_PATH)
    summary: list[float] = []
    c0, s0 = cpu(), statements() if statements else 0
    for _ in range(args.summaries):
        t0 = time.perf_counter()
        body = get(SUMMARY_PATH)
        summary.append(time.perf_counter() - t0)
    summary_cpu = (cpu() - c0) / len(summary)
    summary_statements = ((statements() - s0) / len(summary)) if statements else None
    full = FULL_COLLECTIONS.count - full0
    full_ms = (FULL_COLLECTIONS.seconds - full_s0) * 1000
    out = {
        "page_p50_ms": pct(times, 0.5) * 1000,
        "page_p99_ms": pct(times, 0.99) * 1000,
        "page_cpu_ms": page_cpu * 1000,
        "summary_p50_ms": pct(summary, 0.5) * 1000,
        "summary_p99_ms": pct(summary, 0.99) * 1000,
        "summary_cpu_ms": summary_cpu * 1000,
    }
    print(
        f"{label}: {len(times)} pages of {args.page} ({items} endpoints a walk): "
        f"p50 {out['page_p50_ms']:.1f} ms, p99 {out['page_p99_ms']:.1f} ms, "
        f"CPU {out['page_cpu_ms']:.1f} ms/page; compliance ({sum(body['totals'].values())} "
        f"endpoints) p50 {out['summary_p50_ms']:.1f} ms, p99 {out['summary_p99_ms']:.1f} ms, "
        f"CPU {out['summary_cpu_ms']:.1f} ms; this process's full collections meanwhile: "
        f"{full} ({full_ms:.1f} ms)"
    )
    if page_statements is not None and summary_statements is not None:
        # Machine-independent: what a round trip to the database costs moves with the machine.
        print(
            f"  SQL statements sent: {page_statements:.1f} per page, "
            f"{summary_statements:.1f} per compliance summary"
        )
    return out


def database_alone(dsn: str, ids: dict[str, str], args: argparse.Namespace) -> dict[str, float]:
    import psycopg

    times: list[float] = []
    summary: list[float] = []
    with psycopg.connect(dsn) as conn:
        for n in range(args.passes + 1):
            after = ""
            while True:
                t0 = time.perf_counter()
                rows = conn.execute(
                    PAGE_SQL, {"ws": ids["big"], "after": after, "limit": args.page + 1}
                ).fetchall()
                if n:
                    times.append(time.perf_counter() - t0)
                if len(rows) <= args.page:
                    break
                after = rows[args.page - 1][0]
        for n in range(args.summaries + 1):
            t0 = time.perf_counter()
            conn.execute(SUMMARY_SQL, {"t": ids["tenant"]}).fetchall()
            if n:
                summary.append(time.perf_counter() - t0)
    out = {
        "page_p50_ms": pct(times, 0.5) * 1000,
        "page_p99_ms": pct(times, 0.99) * 1000,
        "summary_p50_ms": pct(summary, 0.5) * 1000,
        "summary_p99_ms": pct(summary, 0.99) * 1000,
    }
    print(
        f"database alone (psycopg): page p50 {out['page_p50_ms']:.2f} ms, p99 "
        f"{out['page_p99_ms']:.2f} ms; summary SQL p50 {out['summary_p50_ms']:.1f} ms, p99 "
        f"{out['summary_p99_ms']:.1f} ms"
    )
    return out


@contextmanager
def gunicorn(env: dict[str, str]) -> Iterator[tuple[int, str]]:
    """`make run`'s server command (without the reconciler) on a free port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**env, "BIND": f"127.0.0.1:{port}"}
    env.pop("RUN_RECONCILER", None)
    proc = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "--config",
            "gunicorn.conf.py",
            "--access-logfile",
            "/dev/null",
            "wsgi:app",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import requests

    try:
        for _ in range(600):
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        settle(worker_pids(proc.pid))
        yield proc.pid, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=10_000)
    parser.add_argument("--page", type=int, default=200)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--summaries", type=int, default=10)
    parser.add_argument("--postgres", metavar="DSN", default=DEFAULT_DSN)
    args = parser.parse_args(argv)
    import requests
    from cryptography.fernet import Fernet

    with throwaway_database(args.postgres) as dsn:
        env = {
            **os.environ,
            "DATABASE_URL": sqlalchemy_url(dsn),
            "CREDENTIAL_KEYS": Fernet.generate_key().decode(),
            "LOG_LEVEL": "WARNING",
        }
        service_cli(env, "db-upgrade")
        t0 = time.perf_counter()
        ids = seed(env["DATABASE_URL"], args.endpoints)
        print(f"seeded {args.endpoints} + 50 endpoints in {time.perf_counter() - t0:.1f} s")
        key = admin_key(env)
        auth = {"Authorization": f"Bearer {key}"}

        base = database_alone(dsn, ids, args)
        with gunicorn(env) as (master, base_url):
            session = requests.Session()
            session.headers.update(auth)

            def http_get(path: str) -> dict[str, Any]:
                r = session.get(base_url + path, timeout=30)
                r.raise_for_status()
                body: dict[str, Any] = r.json()
                return body

            workers = worker_pids(master)
            http = measure("HTTP (gunicorn, 2 workers)", http_get, lambda: cpu_of(workers), args)

        os.environ.update(DATABASE_URL=env["DATABASE_URL"], CREDENTIAL_KEYS=env["CREDENTIAL_KEYS"])
        from service.app import create_app

        client = create_app().test_client()

        def local_get(path: str) -> dict[str, Any]:
            r = client.get(path, headers=auth)
            assert r.status_code == 200, r.get_data(as_text=True)[:500]
            body: dict[str, Any] = r.get_json()
            return body

        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        sent = [0]

        def count(*_args: Any) -> None:
            sent[0] += 1

        event.listen(Engine, "before_cursor_execute", count)
        local = measure(
            "in-process (Flask test client)", local_get, cpu_self, args, lambda: sent[0]
        )
        event.remove(Engine, "before_cursor_execute", count)

    ratio_page = http["page_p99_ms"] / base["page_p99_ms"]
    ratio_summary = http["summary_p50_ms"] / base["summary_p50_ms"]
    print(
        f"page p99: HTTP {http['page_p99_ms']:.1f} ms, in-process {local['page_p99_ms']:.1f} ms, "
        f"database alone {base['page_p99_ms']:.2f} ms; ratio HTTP/database {ratio_page:.1f}x"
    )
    print(
        f"compliance p50: HTTP {http['summary_p50_ms']:.1f} ms, in-process "
        f"{local['summary_p50_ms']:.1f} ms, aggregate SQL alone {base['summary_p50_ms']:.1f} ms; "
        f"ratio HTTP/SQL {ratio_summary:.1f}x"
    )
    ok_page = http["page_p99_ms"] <= PAGE_TARGET_MS
    ok_summary = http["summary_p50_ms"] <= SUMMARY_TARGET_MS
    print(
        f"page_p99_ms={http['page_p99_ms']:.1f} target<={PAGE_TARGET_MS:.0f} "
        f"{'PASS' if ok_page else 'FAIL'}"
    )
    print(
        f"summary_ms={http['summary_p50_ms']:.1f} target<={SUMMARY_TARGET_MS:.0f} "
        f"{'PASS' if ok_summary else 'FAIL'}"
    )
    return 0 if ok_page and ok_summary else 1


if __name__ == "__main__":
    sys.exit(main())
