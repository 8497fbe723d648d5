"""Warm LogsQueryClient latency against the in-process emulator, with a bare-HTTP baseline.

Run: `.venv/bin/python -m bench.emulator_query [--n 500]`. Both loops use one keep-alive TLS
connection to the same URL with the same body; the baseline (`requests.Session().post` with a
static token) shows what the SDK's pipeline adds on top of the emulator itself.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import requests
from azure.monitor.query import LogsQueryClient, LogsQueryStatus

from emulator.kql import Column, Table
from emulator.loganalytics import LogAnalyticsLimits
from emulator.testing import run_emulator, trust_ca
from emulator.tokens import LOG_ANALYTICS_AUDIENCE

TARGET_MEDIAN_MS = 3.0
QUERY = "AppRequests | take 5"


def _table() -> Table:
    start = datetime.now(UTC) - timedelta(hours=1)
    return Table(
        "AppRequests",
        [
            Column("TimeGenerated", "datetime"),
            Column("Name", "string"),
            Column("DurationMs", "real"),
        ],
        [[start + timedelta(seconds=i), f"POST /score/{i % 3}", 10.0 + i] for i in range(50)],
    )


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"median": statistics.median(ordered) * 1000, "p90": pick(0.90), "p99": pick(0.99)}


def _timed(call: Callable[[], object], n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    """Start an emulator, time n SDK queries and n bare POSTs, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()

    with run_emulator() as emu, trust_ca(emu.ca_path):
        box = emu.sandbox(prefix="bench")
        workspace_id = box.log_analytics_workspace_id
        assert workspace_id is not None
        service = emu.state.log_analytics
        service.store.add_workspace(workspace_id, {"AppRequests": _table()})
        # This benchmark measures latency; the emulated per-identity query rate must not bite.
        service.limits = LogAnalyticsLimits(rate_limit=10**9)

        credential = box.credential()
        client = LogsQueryClient(
            credential, endpoint=emu.logs_endpoint, audience=LOG_ANALYTICS_AUDIENCE, retry_total=0
        )

        def sdk_query() -> None:
            result = client.query_workspace(workspace_id, QUERY, timespan=None)
            assert result.status == LogsQueryStatus.SUCCESS

        token = credential.get_token(f"{LOG_ANALYTICS_AUDIENCE}/.default").token
        session = requests.Session()
        url = f"{emu.logs_endpoint}/workspaces/{workspace_id}/query"
        headers = {"Authorization": f"Bearer {token}", "Prefer": ""}
        body = {"query": QUERY, "timespan": None, "workspaces": None}

        def bare_post() -> None:
            response = session.post(url, json=body, headers=headers, timeout=10)
            assert response.status_code == 200

        sdk = _percentiles(_timed(sdk_query, args.n, args.warmup))
        bare = _percentiles(_timed(bare_post, args.n, args.warmup))
        client.close()
        credential.close()

    print(f"LogsQueryClient.query_workspace x{args.n} ({QUERY!r}, 5 rows)")
    for name, figures in (("sdk ", sdk), ("bare", bare)):
        print(
            f"  {name} median={figures['median']:.2f} ms  p90={figures['p90']:.2f} ms"
            f"  p99={figures['p99']:.2f} ms"
        )
    print(f"  sdk/bare median ratio={sdk['median'] / bare['median']:.2f}")
    verdict = "ok" if sdk["median"] <= TARGET_MEDIAN_MS else "OVER TARGET"
    print(f"median_ms={sdk['median']:.2f} target<={TARGET_MEDIAN_MS} {verdict}")


if __name__ == "__main__":
    main()
