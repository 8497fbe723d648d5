"""Where the log query proxy's CPU goes, by component (issue 16), sampled with py-spy.

Run: `.venv/bin/python -m bench.profile_proxy [--n 300] [--rate 500]`.

Starts the emulator (its own process, no injected latency) and the service under gunicorn with
TLS and ONE worker (so one process holds every sample), warms up, then for the typed API
(`POST .../logs/query`) and the compat endpoint (unmodified `LogsQueryClient`) in turn: runs
`--n` sequential small queries while `py-spy record` samples the worker, and prints

- the worker's own CPU per query (utime+stime from /proc/<pid>/stat over the loop: no sampling
  error) and the emulator's (it shares the cores);
- the share of the worker's on-CPU samples per component, each sample attributed to the deepest
  frame of the service's code that names a component (e.g. an `ssl` read under
  `service/adapters/logs.py` is the Azure call, under gevent's server it is the caller's TLS);
  samples with no service frame are Flask/werkzeug or gevent/TLS/gunicorn by their library.

``--floor``: then the same for ``bench/floor_proxy.py`` (one worker; compat's client), the
bare pass-through that bench/log_proxy.py measures as P1's floor: the components that remain
without the service.

py-spy needs ptrace rights over the worker (same user; in a container CAP_SYS_PTRACE).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests
from azure.monitor.query import LogsQueryClient

from bench import proc_cpu_s, worker_pids
from bench.log_proxy import (
    AUDIENCE,
    BIN,
    SMALL,
    KeyCredential,
    emulator,
    floor,
    register,
    service,
)

# (component, file pattern, function pattern or None): the deepest service frame that matches
# one of these names the sample's component. Order matters only within one frame.
SERVICE_RULES: list[tuple[str, str, str | None]] = [
    (
        "result conversion/JSON",
        r"service/adapters/logs\.py",
        r"^(_table|_datetime|_dynamic|_timespan)$",
    ),
    ("result conversion/JSON", r"service/api/logs\.py", r"^json_response$"),
    ("result conversion/JSON", r"service/services/log_queries\.py", r"^(_table_json|_capped)$"),
    (
        "result conversion/JSON",
        r"service/services/log_gateway\.py",
        r"(_encode_result|_decode_result)",
    ),
    ("audit", r"service/services/(audit_queue|audit)\.py", None),
    ("audit", r"service/services/log_queries\.py", r"^record_query$"),
    ("auth/API key", r"service/services/api_keys\.py", None),
    ("auth/API key", r"service/api/hooks\.py", r"^_authenticate$"),
    ("body/contract validation", r"service/api/(openapi|bodies)\.py", None),
    ("body/contract validation", r"service/api/hooks\.py", r"^(_validate|_bound_unsized_body)$"),
    ("body/contract validation", r"service/domain/(kql|text)\.py", None),
    (
        "body/contract validation",
        r"service/services/log_compat\.py",
        r"^(clean_body|clean_prefer|_check_unicode)$",
    ),
    (
        "body/contract validation",
        r"service/api/loganalytics\.py",
        r"^(_json_body|_nesting_depth|_query_string_body|_target)$",
    ),
    ("tenant/workspace look-up", r"service/services/lookup\.py", None),
    ("tenant/workspace look-up", r"service/services/log_compat\.py", r"^resolve$"),
    ("tenant/workspace look-up", r"service/services/(azure_credentials|credential_memo)\.py", None),
    ("rate-limit/budget", r"service/services/query_shaping\.py", None),
    ("rate-limit/budget", r"service/adapters/(host|redis)_coordination\.py", None),
    ("rate-limit/budget", r"service/domain/budget\.py", None),
    ("coalescing", r"service/services/coalescing\.py", None),
    (
        "Azure call (SDK pipeline)",
        r"service/adapters/(logs|identity|tenant_credentials|client_cache)\.py",
        None,
    ),
    ("Azure call (SDK pipeline)", r"service/services/log_gateway\.py", None),
    ("Azure call (SDK pipeline)", r"service/services/log_compat\.py", r"^(forward|_metered)$"),
    ("metrics/logging", r"service/(metrics|logs)\.py", None),
    ("request id/observability hooks", r"service/api/observability\.py", None),
    ("metrics/logging", r"service/services/meter\.py", None),
    ("database session", r"service/db/", None),
    ("the floor's own WSGI app", r"bench/floor_proxy\.py", None),
]
LIBRARY_RULES: list[tuple[str, str]] = [
    ("Flask/werkzeug", r"(^|/)(flask|werkzeug)/"),
    (
        "TLS/gevent/gunicorn",
        r"((^|/)gevent/|(^|/)gunicorn/|(^|/)ssl\.py|(^|/)socket\.py|service/serving\.py)",
    ),
]
# Stacks py-spy reports active while they wait: gevent's thread pool blocked on its queue, and
# the hub inside libev (C) with no Python frame above it, mostly its epoll wait (py-spy cannot
# tell the two apart without --native); both are left out of the shares.
_IDLE = re.compile(
    r"(acquire_with_timeout \(gevent/_threading\.py:\d+\)|Hub\.run \(gevent/hub\.py:\d+\))$"
)
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")
_COMPILED = [(c, re.compile(f), re.compile(fn) if fn else None) for c, f, fn in SERVICE_RULES]


def classify(stack: str) -> str:
    """The component of one collapsed py-spy stack (``frame;frame;...``, root first)."""
    frames = [_FRAME.match(f) for f in stack.split(";")]
    parsed = [(m["func"], m["file"]) for m in frames if m]
    for func, file in reversed(parsed):
        for component, file_re, func_re in _COMPILED:
            if file_re.search(file) and (func_re is None or func_re.search(func)):
                return component
    for _func, file in reversed(parsed):
        for component, pattern in LIBRARY_RULES:
            if re.search(pattern, file):
                return component
        if "service/" in file:
            return "service (other)"
    return "other"


def components(raw: Path) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    """Samples per component, and per (component, package of the sample's leaf frame)."""
    counts: Counter[str] = Counter()
    detail: Counter[tuple[str, str]] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit() and not _IDLE.search(stack):
            component = classify(stack)
            counts[component] += int(n)
            detail[(component, _package(stack))] += int(n)
    return counts, detail


def _package(stack: str) -> str:
    match = _FRAME.match(stack.rsplit(";", 1)[-1])
    if not match:
        return "?"
    file = match["file"]
    if "site-packages/" in file:
        parts = file.split("site-packages/", 1)[1].split("/")
        return "/".join(parts[:3] if parts[0] == "azure" else parts[:1])
    if file.startswith("service/") or "/service/" in file:
        return file.split("service/", 1)[1]
    return file.rsplit("/", 1)[-1]


def pyspy() -> str:
    found = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    if not found:
        sys.exit("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def profiled(
    label: str, pid: int, emulator_pid: int, call, n: int, rate: int, out: Path, verbose: bool
) -> None:  # type: ignore[no-untyped-def]
    for _ in range(min(20, n)):
        call()
    # CPU first, unprofiled (py-spy's pauses would not count, but keep the loop clean)
    cpu0, emu0, t0 = proc_cpu_s(pid), proc_cpu_s(emulator_pid), time.perf_counter()
    for _ in range(n):
        call()
    cpu = proc_cpu_s(pid) - cpu0
    emu = proc_cpu_s(emulator_pid) - emu0
    wall = time.perf_counter() - t0
    raw = out / f"{label}.txt"
    spy = subprocess.Popen(
        [
            pyspy(),
            "record",
            "--format",
            "raw",
            "--rate",
            str(rate),
            "--pid",
            str(pid),
            "--output",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches
    for _ in range(n):
        call()
    spy.send_signal(2)
    spy.wait(60)
    counts, detail = components(raw)
    total = sum(counts.values()) or 1
    print(
        f"{label}: n={n}  wall {wall / n * 1000:.2f} ms/query  service worker CPU "
        f"{cpu / n * 1000:.2f} ms/query  emulator CPU {emu / n * 1000:.2f} ms/query"
        f"  ({total} samples)"
    )
    per_query = cpu / n * 1000
    for component, count in counts.most_common():
        share = count / total
        print(f"  {component:32s} {share * 100:5.1f}%  ~{share * per_query:5.2f} ms/query")
        if verbose:
            inner = [(pkg, c) for (comp, pkg), c in detail.items() if comp == component]
            for pkg, c in sorted(inner, key=lambda x: -x[1])[:6]:
                print(f"      {pkg:40s} {c / total * 100:5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--keep", help="directory to keep py-spy's raw stacks in")
    parser.add_argument("--detail", action="store_true", help="each component's leaf packages")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="the emulator's, per query")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also profile bench/floor_proxy.py (one worker) with compat's client: the same"
        " components without the service",
    )
    parser.add_argument(
        "--large-mb", type=int, default=0, help="also profile N MB results through compat (P2)"
    )
    args = parser.parse_args()
    pyspy()
    with tempfile.TemporaryDirectory() as tmp, emulator(Path(tmp), "process") as emu:
        out = Path(args.keep) if args.keep else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        box = emu.sandbox()
        emu.small_telemetry(box.log_analytics_workspace_id)
        emu.limits(rate_limit=10**9, latency_s=args.latency_ms / 1000)
        budget = {"LOG_QUERY_RATE_LIMIT": "100000", "LOG_QUERY_COALESCE": "false"}
        (Path(tmp) / "svc").mkdir()
        with service(Path(tmp) / "svc", emu, 1, budget) as (url, auth, proc):
            typed_url = register(url, auth, box)
            key = requests.post(
                f"{url}/v1/api-keys", headers=auth, json={"name": "r", "role": "reader"}
            ).json()["secret"]
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {key}"
            ws = box.log_analytics_workspace_id
            compat = LogsQueryClient(
                KeyCredential(key), endpoint=f"{url}/loganalytics", audience=AUDIENCE
            )
            (worker,) = worker_pids(proc.pid)
            print(
                f"gunicorn 1 worker (pid {worker}), emulator pid {emu.pid}; cores: {os.cpu_count()}"
            )
            print(f"load average before: {Path('/proc/loadavg').read_text().split()[:3]}")

            def typed() -> None:
                session.post(typed_url, json={"query": SMALL}).raise_for_status()

            def compat_query() -> None:
                compat.query_workspace(ws, SMALL, timespan=None)

            profiled("typed", worker, emu.pid, typed, args.n, args.rate, out, args.detail)
            profiled("compat", worker, emu.pid, compat_query, args.n, args.rate, out, args.detail)
            if args.floor:
                with floor(Path(tmp) / "svc", emu, box, 1) as (floor_url, (floor_worker,)):
                    bare = LogsQueryClient(
                        KeyCredential("unused"), endpoint=floor_url, audience=AUDIENCE
                    )

                    def floor_query() -> None:
                        bare.query_workspace(ws, SMALL, timespan=None)

                    profiled(
                        "floor", floor_worker, emu.pid, floor_query, args.n, args.rate, out,
                        args.detail,
                    )  # fmt: skip
            if args.large_mb:
                large = emu.sandbox()
                emu.large_telemetry(large.log_analytics_workspace_id, args.large_mb * 1_000_000)
                register(url, auth, large)
                target = (
                    f"{url}/loganalytics/v1/workspaces/{large.log_analytics_workspace_id}/query"
                )

                def large_query() -> None:
                    r = session.post(target, json={"query": "AppTraces"}, stream=True)
                    for _ in r.iter_content(1 << 20):
                        pass
                    r.raise_for_status()

                profiled("large", worker, emu.pid, large_query, 3, args.rate, out, args.detail)


if __name__ == "__main__":
    main()
