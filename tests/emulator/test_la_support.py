"""Shared helpers of the Log Analytics emulator tests (this module holds no tests).

The official swagger and the real recordings live in ../shared/reference/azure (see SOURCES.md);
the tests that read them skip, saying so, where that folder is absent (`tests.support.reference`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jsonschema
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from emulator import la_errors
from emulator.kql import Column, Table
from emulator.loganalytics import LogAnalyticsLimits, LogAnalyticsService, TelemetryStore
from tests.support.reference import reference, require

SWAGGER = reference(
    "azure-rest-api-specs/specification/operationalinsights/data-plane"
    "/Microsoft.OperationalInsights/stable/2022-10-27/OperationalInsights.json"
)
RECORDINGS = reference("azure-sdk-for-python/sdk/monitor/azure-monitor-query/tests/recordings")

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
WORKSPACE = "11111111-2222-3333-4444-555555555555"
OTHER_WORKSPACE = "99999999-8888-7777-6666-555555555555"
RESOURCE = (
    "/subscriptions/00000000-0000-0000-0000-00000000000a/resourceGroups/rg"
    "/providers/microsoft.insights/components/app-ai"
)


def requests_table(rows: int = 3, *, role: str = "scorer") -> Table:
    """A small AppRequests-like table with JSON-native cells."""
    return Table(
        "AppRequests",
        [
            Column("TimeGenerated", "datetime"),
            Column("AppRoleName", "string"),
            Column("DurationMs", "real"),
        ],
        [[f"2024-05-01T11:{i % 60:02d}:00Z", role, float(i)] for i in range(rows)],
    )


def fake_engine(
    query: str, tables: Mapping[str, Table], now: datetime, window: object, limits: object
) -> list[dict[str, Any]]:
    """A stand-in for the KQL engine: `<Table>` returns the table, `bad...` is a syntax error.

    The service is tested on its own here; the KQL subset has its own tests.
    """
    if query.startswith("bad"):
        raise la_errors.kql_error(
            {
                "code": "SyntaxError",
                "message": "A recognition error occurred in the query.",
                "innererror": {"code": "SYN0002", "message": "Query could not be parsed"},
            }
        )
    name = query.split("|")[0].strip()
    if name not in tables:
        raise la_errors.kql_error(
            {
                "code": "SemanticError",
                "message": "A semantic error occurred.",
                "innererror": {"code": "SEM0100", "message": f"Failed to resolve '{name}'"},
            }
        )
    table = tables[name]
    return [
        {
            "name": "PrimaryResult",
            "columns": [{"name": c.name, "type": c.type} for c in table.columns],
            "rows": table.rows,
        }
    ]


def make_service(
    limits: LogAnalyticsLimits | None = None, *, rows: int = 3, engine: Any = fake_engine
) -> LogAnalyticsService:
    """A service over one workspace and one App Insights resource, clock fixed at NOW."""
    store = TelemetryStore()
    store.add_workspace(WORKSPACE, {"AppRequests": requests_table(rows)})
    store.add_resource(RESOURCE, {"requests": requests_table(2)})
    limits = limits or LogAnalyticsLimits()
    limits.now = lambda: NOW
    return LogAnalyticsService(store, limits, engine=engine)


def call(
    service: LogAnalyticsService,
    path: str,
    body: Any = None,
    *,
    method: str = "POST",
    prefer: str | None = None,
    identity: str = "sp-1",
    query_string: dict[str, str] | None = None,
) -> Response:
    """Send one request straight to `handle`, as the HTTPS server would."""
    headers = {"Prefer": prefer} if prefer is not None else {}
    data = body if isinstance(body, bytes) else (None if body is None else json.dumps(body))
    builder = EnvironBuilder(
        path=path,
        method=method,
        data=data,
        headers=headers,
        query_string=query_string,
        content_type="application/json" if data is not None else None,
    )
    return service.handle(Request(builder.get_environ()), identity)


def body_of(response: Response) -> Any:
    """The JSON body of a response."""
    return json.loads(response.get_data())


@cache
def _swagger_definitions() -> dict[str, Any]:
    definitions = copy.deepcopy(json.loads(require(SWAGGER).read_text())["definitions"])
    # The swagger types each row cell as `{"type": "object"}`, which AutoRest reads as "any
    # value"; read literally it would reject Azure's own recorded rows of strings and numbers.
    definitions["table"]["properties"]["rows"]["items"]["items"] = {}
    return definitions


def validator(definition: str) -> jsonschema.Draft4Validator:
    """A validator for one swagger definition (e.g. queryResults, errorResponse, batchResponse)."""
    schema = {"$ref": f"#/definitions/{definition}", "definitions": _swagger_definitions()}
    return jsonschema.Draft4Validator(schema)


def assert_valid(body: Any, definition: str) -> None:
    """Fail with every schema violation of `body` against a swagger definition."""
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator(definition).iter_errors(body)
    ]
    assert not errors, errors


def recording(name: str) -> dict[str, Any]:
    """The data-plane (non-login) entries of one recording file, by test name suffix."""
    path = next(require(RECORDINGS).glob(f"*{name}.json"))
    return json.loads(path.read_text())
