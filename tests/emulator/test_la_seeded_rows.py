"""Seeded telemetry looks like the real thing: App* rows name their App Insights component."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from emulator.fleet import load_fleet
from emulator.state import EmulatorState
from emulator.telemetry import TelemetrySpec, generate

DEMO = Path(__file__).resolve().parents[2] / "emulator" / "fleets" / "demo.yaml"
NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _resource_ids(table: object) -> set[str]:
    columns = [c.name for c in table.columns]  # type: ignore[attr-defined]
    index = columns.index("_ResourceId")
    return {row[index] for row in table.rows}  # type: ignore[attr-defined]


def test_generated_app_rows_carry_the_given_app_insights_resource_id() -> None:
    component = ("/subscriptions/1b2c3d4e-0000-4000-8000-000000000001/resourceGroups/rg-x"
                 "/providers/Microsoft.Insights/components/ai-x")  # fmt: skip
    tables = generate(TelemetrySpec(("a",), NOW - timedelta(hours=1), NOW, seed=1,
                                    app_insights_resource_id=component))  # fmt: skip
    for name in ("AppRequests", "AppDependencies", "AppTraces"):
        assert _resource_ids(tables[name]) == {component.lower()}


def test_the_fleets_seeded_workspaces_name_their_own_app_insights_component() -> None:
    state = EmulatorState()
    load_fleet(state, DEMO)
    seeded = 0
    for ws in state.workspaces.values():
        if not (ws.log_analytics_workspace_id and ws.app_insights_resource_id):
            continue
        scope = state.telemetry.workspace(ws.log_analytics_workspace_id)
        if scope is None or "AppRequests" not in scope.tables:
            continue
        seeded += 1
        assert _resource_ids(scope.tables["AppRequests"]) == {ws.app_insights_resource_id.lower()}
    assert seeded > 0
