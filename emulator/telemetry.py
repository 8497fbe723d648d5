"""Seeded, realistic Application Insights telemetry for AML web services, in both schemas.

``generate(spec)`` simulates every role (AML service) over [start, end): Poisson request arrivals,
log-normal durations, failures at ``failure_rate`` (each failed 500 logs an exception), HTTP and
SQL dependency calls, and the traces an AML ``score.py`` prints (its JSON prints become
hierarchical ``customDimensions``, which ``traces | where customDimensions contains "input"``
finds). Every event is emitted twice, as a classic row (``requests``...) and as a workspace row
(``AppRequests``...), so both schemas describe exactly the same events. Same spec, same tables.
Rows share their constant strings and their ``customDimensions`` dicts: treat them as read-only.
"""

from __future__ import annotations

import gc
import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

from emulator.kql import Table
from emulator.kql.schemas import CLASSIC_COLUMNS, WORKSPACE_COLUMNS, performance_bucket
from emulator.kql.wire import table_to_wire

__all__ = ["CLASSIC_COLUMNS", "WORKSPACE_COLUMNS", "TelemetrySpec", "generate", "large_table"]


@dataclass(frozen=True)
class TelemetrySpec:
    """What to simulate. ``roles`` are AML service names (``cloud_RoleName``/``AppRoleName``)."""

    roles: tuple[str, ...]
    start: datetime
    end: datetime
    requests_per_hour: float = 60.0
    failure_rate: float = 0.02
    seed: int = 0
    app_role_instance_count: int = 2
    dependencies_per_request: float = 1.0  # mean; each request makes floor or ceil of it
    trace_rate: float = 1.0  # share of requests whose score.py prints its input/output JSON
    workspace_name: str = "aml-workspace"
    app_name: str = "aml-appinsights"
    subscription_id: str = "00000000-0000-0000-0000-000000000000"
    resource_group: str = "aml-rg"
    # The App Insights component the rows came from: App* rows carry it (lower case, as Log
    # Analytics stores it) in _ResourceId. None: one built from the three fields above.
    app_insights_resource_id: str | None = None


_EXCEPTIONS = (
    ("ValueError", "could not convert string to float: 'abc'", "run"),
    ("KeyError", "'data'", "run"),
    ("RuntimeError", "CUDA out of memory. Tried to allocate 20.00 MiB", "predict"),
    ("TypeError", "'NoneType' object is not subscriptable", "preprocess"),
)
_SQL_TEXT = "SELECT features FROM customer_features WHERE id = @id"
_SDK = "py3.8.13:oc0.11.2:ext1.1.9"
_MS = timedelta(milliseconds=1)


_MASK = (1 << 128) - 1
_STEP = 0x9E3779B97F4A7C15F39CC0605CEDC835  # odd: the sequence visits every 128-bit value
_MIX = 0xD6E8FEB86659FD93C2B2AE3D27D4EB4F  # odd multiplier: scrambles consecutive states


class _Ids:
    """Unique, random-looking, deterministic identifiers.

    A counter scrambled by an odd multiplier (a bijection mod 2**128) instead of fresh RNG
    draws: ids are needed ~1M times per large run and this is several times cheaper.
    """

    def __init__(self, rng: random.Random) -> None:
        self.state = rng.getrandbits(128)

    def _next(self) -> int:
        self.state = (self.state + _STEP) & _MASK
        return (self.state * _MIX) & _MASK

    def hex(self, digits: int) -> str:
        text = "".join(f"{self._next():032x}" for _ in range(0, digits, 32))
        return text[:digits]

    def pair(self) -> tuple[str, str]:
        """One draw as 32 hex digits and as a version-4-looking guid."""
        h = f"{self._next():032x}"
        return h, f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"

    def guid(self) -> str:
        return self.pair()[1]


class _Instance:
    """One replica of a service: the constant tails of its rows in both schemas.

    Rows are built as ``[*head, dims, None, op_name, op_id, parent, *tail]``; star-unpacking a
    prebuilt tuple keeps the per-row cost in C.
    """

    def __init__(self, role: str, name: str, app_id: str, ikey: str, spec: TelemetrySpec,
                 resource_id: str) -> None:  # fmt: skip
        self.name = name
        self.url = f"http://{role}.svc.cluster.local/score"
        self.classic = ("", "", "", "", "", "", "PC", "", "", "0.0.0.0", "", "", "", "", role,
                        name, app_id, spec.app_name, ikey, _SDK)  # fmt: skip
        self.app = {
            table: ("", "", "", "", "", "", role, name, "PC", "", "", "0.0.0.0", "", "", "", "",
                    app_id, ikey, _SDK, 1, "", "", "Azure", table, resource_id)
            for table in WORKSPACE_COLUMNS
        }  # fmt: skip


class _Simulation:
    """Holds the output row lists and the constants shared by every role."""

    def __init__(self, spec: TelemetrySpec) -> None:
        ids = _Ids(random.Random(f"context:{spec.seed}"))
        self.spec = spec
        self.app_id, self.ikey, self.tenant = ids.guid(), ids.guid(), ids.guid()
        self.resource_id = (
            spec.app_insights_resource_id
            or f"/subscriptions/{spec.subscription_id}/resourcegroups/{spec.resource_group}"
            f"/providers/microsoft.insights/components/{spec.app_name}"
        ).lower()
        self.blob = f"{spec.workspace_name.replace('-', '')}store.blob.core.windows.net"
        self.payloads = [_payload(rng) for rng in [random.Random(f"payloads:{spec.seed}")]
                         for _ in range(256)]  # fmt: skip
        self.rows: dict[str, list[list[Any]]] = {
            n: [] for n in (*CLASSIC_COLUMNS, *WORKSPACE_COLUMNS)
        }

    def role(self, index: int, role: str) -> None:
        spec = self.spec
        rng = random.Random(f"{spec.seed}:{index}:{role}")
        ids = _Ids(rng)
        instances = []
        for _ in range(max(1, spec.app_role_instance_count)):
            name = f"{role}-{ids.hex(9)}-{ids.hex(5)}"
            instance = _Instance(role, name, self.app_id, self.ikey, spec, self.resource_id)
            dims = {"Container Id": ids.hex(64), "Workspace Name": spec.workspace_name,
                    "Service Name": role}  # fmt: skip
            instances.append((instance, dims))
            self.trace(ids, instance, spec.start, "Model initialized; scoring server ready",
                       {**dims, "Request Id": ""}, "", "", "")  # fmt: skip
        seconds = (spec.end - spec.start).total_seconds()
        rate = spec.requests_per_hour / 3600.0
        if rate <= 0 or seconds <= 0:
            return
        median_ms = 30.0 + 40.0 * rng.random()  # each service has its own typical latency
        offset = rng.expovariate(rate)
        while offset < seconds:
            instance, dims = instances[rng.randrange(len(instances))]
            self.request(rng, ids, role, instance, dims,
                         spec.start + timedelta(seconds=offset), median_ms)  # fmt: skip
            offset += rng.expovariate(rate)

    def request(self, rng: random.Random, ids: _Ids, role: str, inst: _Instance,
                base_dims: dict[str, Any], at: datetime, median_ms: float) -> None:  # fmt: skip
        spec = self.spec
        op_id, item_id = ids.pair()
        request_id = op_id[16:]
        dims = {**base_dims, "Request Id": item_id}
        failed = rng.random() < spec.failure_rate
        duration = rng.lognormvariate(math.log(median_ms), 0.5) * (3.0 if failed else 1.0)
        code = ("500" if rng.random() < 0.8 else "503") if failed else "200"
        name, url = "POST /score", inst.url
        bucket = performance_bucket(duration)
        self.rows["requests"].append(
            [at, request_id, "", name, url, "False" if failed else "True", code, duration, bucket,
             dims, None, name, op_id, op_id, *inst.classic, item_id, "request", 1])  # fmt: skip
        self.rows["AppRequests"].append(
            [self.tenant, at, request_id, "", name, url, not failed, code, duration, bucket,
             dims, None, name, op_id, None, op_id, *inst.app["AppRequests"]])  # fmt: skip
        whole = int(spec.dependencies_per_request)
        calls = whole + (rng.random() < spec.dependencies_per_request - whole)
        for call in range(calls):
            self.dependency(rng, ids, role, inst, dims, at, (op_id, request_id, name),
                            failed and call == 0)  # fmt: skip
        if failed and code == "500":
            self.exception(rng, ids, inst, dims, at, (op_id, request_id, name))
        if rng.random() < spec.trace_rate:
            # score.py runs print(json.dumps(...)): the text is the message and its keys join
            # the standard dimensions. Payloads come from a pool: formatting fresh float
            # lists per request would be a third of the generation time.
            message, payload = self.payloads[rng.randrange(len(self.payloads))]
            self.trace(ids, inst, at + duration * 0.9 * _MS, message, {**dims, **payload},
                       op_id, request_id, name)  # fmt: skip

    def dependency(self, rng: random.Random, ids: _Ids, role: str, inst: _Instance,
                   dims: dict[str, Any], at: datetime, op: tuple[str, str, str],
                   failed: bool) -> None:  # fmt: skip
        op_id, parent, op_name = op
        if rng.random() < 0.6:
            kind, target, name = "HTTP", self.blob, "GET /azureml/models/model.pkl"
            data = f"https://{target}/azureml/models/model.pkl"
            code = "503" if failed else "200"
        else:
            kind, target = "SQL", f"{role}-sql.database.windows.net | featuredb"
            name, data, code = "featuredb", _SQL_TEXT, "-2" if failed else "0"
        duration = rng.lognormvariate(2.48, 0.6)  # median ~12 ms
        dep_hex, item_id = ids.pair()
        dep_id, start = dep_hex[:16], at + (0.5 + 2.5 * rng.random()) * _MS
        bucket, ok = performance_bucket(duration), not failed
        self.rows["dependencies"].append(
            [start, dep_id, target, kind, name, data, "True" if ok else "False", code, duration,
             bucket, dims, None, op_name, op_id, parent, *inst.classic, item_id,
             "dependency", 1])  # fmt: skip
        self.rows["AppDependencies"].append(
            [self.tenant, start, dep_id, target, kind, name, data, ok, code, duration, bucket,
             dims, None, op_name, op_id, parent, *inst.app["AppDependencies"]])  # fmt: skip

    def exception(self, rng: random.Random, ids: _Ids, inst: _Instance, dims: dict[str, Any],
                  at: datetime, op: tuple[str, str, str]) -> None:  # fmt: skip
        op_id, parent, op_name = op
        kind, message, method = _EXCEPTIONS[rng.randrange(len(_EXCEPTIONS))]
        frame = {"level": 0, "method": method, "assembly": "score.py",
                 "fileName": "/var/azureml-app/score.py", "line": 42}  # fmt: skip
        details = [{"outerId": "0", "message": message, "type": kind, "id": "0",
                    "parsedStack": [frame]}]  # fmt: skip
        when = at + (1.0 + 4.0 * rng.random()) * _MS
        where = ("score.py", method)  # assembly and method, the same at every exception level
        fields = (f"{kind} at {method}", "UserCode", kind, message, *where, kind, message,
                  *where, kind, message, *where, 3, details)  # fmt: skip
        self.rows["exceptions"].append(
            [when, *fields, dims, None, op_name, op_id, parent, *inst.classic, ids.guid(),
             "exception", 1])  # fmt: skip
        self.rows["AppExceptions"].append(
            [self.tenant, when, *fields, dims, None, op_name, op_id, parent,
             *inst.app["AppExceptions"]])  # fmt: skip

    def trace(self, ids: _Ids, inst: _Instance, at: datetime, message: str,
              dims: dict[str, Any], op_id: str, parent: str, op_name: str) -> None:  # fmt: skip
        self.rows["traces"].append(
            [at, message, 1, dims, None, op_name, op_id, parent, *inst.classic, ids.guid(),
             "trace", 1])  # fmt: skip
        self.rows["AppTraces"].append(
            [self.tenant, at, message, 1, dims, None, op_name, op_id, parent,
             *inst.app["AppTraces"]])  # fmt: skip


def _payload(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """One score.py input/output print: its JSON text and the parsed object."""
    rows = 1 + int(rng.random() * 3)
    payload = {
        "input": {"data": [[round(rng.random() * 10, 2) for _ in range(4)] for _ in range(rows)]},
        "output": [round(rng.random(), 4) for _ in range(rows)],
    }
    return json.dumps(payload), payload


def generate(spec: TelemetrySpec) -> dict[str, Table]:
    """Tables ``requests, dependencies, exceptions, traces`` and their ``App*`` twins, each
    sorted by time. Deterministic: the same spec always yields the same rows."""
    simulation = _Simulation(spec)
    # Hundreds of thousands of small lists and dicts, none cyclic: the cyclic GC would rescan
    # the growing heap again and again (it doubled the run time), so it pauses while building.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for index, role in enumerate(spec.roles):
            simulation.role(index, role)
    finally:
        if gc_was_enabled:
            gc.enable()
    tables = {}
    for name, rows in simulation.rows.items():
        columns = CLASSIC_COLUMNS.get(name) or WORKSPACE_COLUMNS[name]
        rows.sort(key=itemgetter(0 if name in CLASSIC_COLUMNS else 1))
        tables[name] = Table(name, list(columns), rows)
    return tables


def large_table(target_bytes: int = 50_000_000, *, name: str = "AppTraces", seed: int = 0) -> Table:
    """A ``traces`` or ``AppTraces`` table of about ``target_bytes`` once serialised to JSON.

    Rows are copies of one score.py trace with fresh time, operation id and message, so 50 MB
    builds in well under a second; meant for streaming and response-size benchmarks.
    """
    start = datetime(2024, 1, 1, tzinfo=UTC)
    spec = TelemetrySpec(roles=("bench-svc",), start=start, end=start + timedelta(minutes=5),
                         requests_per_hour=3600.0, seed=seed)  # fmt: skip
    sample = generate(spec)[name]
    time_i, message_i, op_i = (0, 1, 6) if name == "traces" else (1, 2, 7)
    template = next(r for r in sample.rows if r[message_i].startswith('{"input"'))
    wire_row = table_to_wire(Table(name, sample.columns, [template]))["rows"][0]
    count = max(1, target_bytes // (len(json.dumps(wire_row)) + 1))
    rows = []
    for i in range(count):
        row = list(template)
        row[time_i] = start + i * _MS
        row[op_i] = f"{i:032x}"
        row[message_i] = f'{template[message_i][:-1]}, "seq": {i}}}'
        rows.append(row)
    return Table(name, list(sample.columns), rows)
