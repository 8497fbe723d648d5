"""The telemetry views of v2 online deployments, through the API against the emulator.

A deployment's records carry its SERVICE_NAME as role name (see
``service.domain.telemetry_views``); the views show one deployment's records only, and answer
409 instead of guessing when the records cannot be told apart from another target's."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from emulator.kql import Table
from emulator.telemetry import TelemetrySpec, generate
from emulator.testing import Sandbox, unique_name
from service.services import audit_queue
from service.services.runtime import Runtime
from tests.api.helpers import assert_problem
from tests.integration.log_support import NOW, START, Wired, wire
from tests.support.api import ApiClient, World

SOURCES = pytest.mark.parametrize("source", ["log_analytics", "app_insights"])
V1 = ("scorer-a", "scorer-b")  # log_support registers these as v1 services


@pytest.fixture(autouse=True)
def _no_pending_query_audit(runtime: Runtime) -> Iterator[None]:
    yield
    audit_queue.flush(runtime)


class Fleet:
    def __init__(
        self, wired: Wired, operator: str, roles: dict[str, str], tables: dict[str, Table]
    ) -> None:
        self.wired, self.operator, self.roles, self.tables = wired, operator, roles, tables

    def records(self, table: str, role: str) -> list[dict[str, Any]]:
        t = self.tables[table]
        names = [c.name for c in t.columns]
        column = "AppRoleName" if table.startswith("App") else "cloud_RoleName"
        return [r for r in (dict(zip(names, row, strict=True)) for row in t.rows)
                if r[column] == role]  # fmt: skip


@pytest.fixture
def fleet(api: ApiClient, world: World, admin_key: str, sandbox: Sandbox) -> Fleet:
    wired = wire(api, world, admin_key, sandbox, seed=False)
    for name in V1:
        sandbox.add_service(name, compute_type="AKS", app_insights_enabled=True)
    sandbox.add_online_endpoint("score")
    blue, green = unique_name("score-blue"), unique_name("score-green")
    deployments = {
        "blue": {"SERVICE_NAME": blue},
        "green": {"SERVICE_NAME": green},
        "unnamed": {},
        "clash": {"SERVICE_NAME": "scorer-a"},  # a v1 service's name
    }
    for name, env in deployments.items():
        sandbox.add_online_deployment(
            "score", name, app_insights_enabled=True, environment_variables=env
        )
    sandbox.add_online_endpoint("twins")
    for name in ("one", "two"):
        sandbox.add_online_deployment(
            "twins", name, app_insights_enabled=True, environment_variables={"SERVICE_NAME": "tw"}
        )
    # Records under every role name the emulator's deployments report, "ML service" included
    # (the inference server's default, shared by every deployment that sets no SERVICE_NAME).
    roles = (*V1, blue, green, "ML service", "tw")
    spec = TelemetrySpec(roles=roles, start=START, end=NOW, requests_per_hour=80,
                         failure_rate=0.15, seed=23)  # fmt: skip
    tables = generate(spec)
    store = sandbox.emulator.state.telemetry
    assert sandbox.log_analytics_workspace_id
    assert sandbox.app_insights_resource_id
    store.add_workspace(sandbox.log_analytics_workspace_id,
                        {n: t for n, t in tables.items() if n.startswith("App")})  # fmt: skip
    store.add_resource(sandbox.app_insights_resource_id,
                       {n: t for n, t in tables.items() if not n.startswith("App")})  # fmt: skip
    operator = world.key("operator", wired.tenant)
    r = api.post(f"{wired.base}/sync", operator)
    assert r.status_code == 200, r.get_data(as_text=True)
    return Fleet(wired, operator, {"score.blue": blue, "score.green": green}, tables)


def view(api: ApiClient, fleet: Fleet, target: str, kind: str, **query: str) -> Any:
    w = fleet.wired
    return api.get(f"{w.base}/endpoints/{target}/telemetry/{kind}", w.reader, query_string=query)


def timespan() -> str:
    return f"{START.isoformat()}/{NOW.isoformat()}".replace("+00:00", "Z")


@SOURCES
def test_each_deployment_of_an_endpoint_sees_only_its_own_requests(
    api: ApiClient, fleet: Fleet, source: str
) -> None:
    table = "AppRequests" if source == "log_analytics" else "requests"
    seen = {}
    for target, role in fleet.roles.items():
        r = view(api, fleet, target, "requests", source=source, timespan=timespan())
        assert r.status_code == 200, r.get_data(as_text=True)
        assert r.json["endpoint"] == target
        seen[target] = sum(item["requests"] for item in r.json["items"])
        assert seen[target] == len(fleet.records(table, role)) > 0
    # Not the endpoint's whole traffic: each view counts one role's records only. (The seeded
    # counts are random and may be equal, so comparing the two views with each other proved
    # nothing and failed when they happened to match.)
    both = sum(len(fleet.records(table, fleet.roles[t])) for t in ("score.blue", "score.green"))
    assert all(0 < seen[t] < both for t in ("score.blue", "score.green"))


@SOURCES
def test_exceptions_dependencies_and_traces_follow_the_deployment(
    api: ApiClient, fleet: Fleet, source: str
) -> None:
    role = fleet.roles["score.green"]
    exc, dep, tr = (("AppExceptions", "AppDependencies", "AppTraces") if source == "log_analytics"
                    else ("exceptions", "dependencies", "traces"))  # fmt: skip
    type_column = "ExceptionType" if source == "log_analytics" else "type"
    r = view(api, fleet, "score.green", "exceptions", source=source, timespan=timespan())
    assert r.status_code == 200, r.get_data(as_text=True)
    expected = Counter(rec[type_column] for rec in fleet.records(exc, role))
    assert {i["exception_type"]: i["exceptions"] for i in r.json["items"]} == dict(expected)

    r = view(api, fleet, "score.green", "dependencies", source=source, timespan=timespan())
    assert r.status_code == 200, r.get_data(as_text=True)
    assert sum(i["calls"] for i in r.json["items"]) == len(fleet.records(dep, role))

    r = view(api, fleet, "score.green", "traces", source=source, timespan=timespan(), limit="50")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert len(r.json["items"]) == min(50, len(fleet.records(tr, role)))
    services = {i["custom_dimensions"]["Service Name"] for i in r.json["items"]}
    assert services == {role}


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("score.unnamed", "does not set SERVICE_NAME"),
        ("score.clash", "also a web service"),
        ("twins.one", "shares the role name 'tw'"),
    ],
)
def test_a_deployment_whose_records_cannot_be_told_apart_is_refused_not_guessed(
    api: ApiClient, fleet: Fleet, target: str, why: str
) -> None:
    for kind in ("requests", "dependencies", "exceptions", "traces"):
        r = view(api, fleet, target, kind, timespan=timespan())
        assert_problem(r, 409)
        assert why in r.json["detail"]


def test_a_v1_service_view_is_unchanged_beside_v2_deployments(api: ApiClient, fleet: Fleet) -> None:
    r = view(api, fleet, "scorer-b", "requests", timespan=timespan())
    assert r.status_code == 200, r.get_data(as_text=True)
    assert sum(i["requests"] for i in r.json["items"]) == len(
        fleet.records("AppRequests", "scorer-b")
    )
