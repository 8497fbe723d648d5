"""The source document's telemetry views of one endpoint, as KQL for both table schemas.

An App Insights resource holds the classic tables (``requests``, ``timestamp``,
``cloud_RoleName``...); a workspace-based Log Analytics workspace holds ``AppRequests``,
``TimeGenerated``, ``AppRoleName``... Each view is written once against :class:`Schema` and
renders to the same output columns whichever schema it queries. Records are picked by their
role name (``cloud_RoleName``/``AppRoleName``): a v1 web service's name, or for a v2 online
deployment the role :func:`online_role` decides. Caller values reach the text only through
``kql.string_literal`` or as validated numbers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta

from service.domain.kql import KqlInputError, string_literal, timespan_literal

MAX_TRACE_LIMIT = 1000

# How a v2 online deployment's records are named in App Insights. The inference server
# (microsoft/azureml-inference-server, azureml_inference_server_http/server/config.py) reads
# its service name from the SERVICE_NAME environment variable, default "ML service"; its
# AppInsightsClient (server/appinsights_client.py) puts it in the OpenTelemetry resource as
# ``service.name`` and in every request's "Service Name" dimension, and the Azure Monitor
# exporter makes ``service.name`` the cloud role name (Azure/azure-sdk-for-python,
# sdk/monitor/azure-monitor-opentelemetry-exporter/azure/monitor/opentelemetry/exporter/
# _utils.py, _get_cloud_role). No source says what the platform sets SERVICE_NAME to in a
# managed or Kubernetes deployment, so only a deployment that sets it itself (its
# environmentVariables) is identified, and only when no other deployment of its endpoint nor a
# v1 service of the workspace answers to the same name.
ROLE_VARIABLE = "SERVICE_NAME"
DEFAULT_ROLE = "ML service"


class UnidentifiedTelemetry(ValueError):
    """A v2 deployment's records cannot be told apart from other targets' records."""


def online_role(
    deployment: str, roles: Mapping[str, str | None], v1_services: Collection[str]
) -> str:
    """The role name of ``deployment``'s records, given every deployment of its online endpoint
    (name -> its SERVICE_NAME, None when unset) and the workspace's v1 service names.

    Raises :class:`UnidentifiedTelemetry` rather than return a name other targets share."""
    role = roles.get(deployment)
    if not role or role == DEFAULT_ROLE:
        raise UnidentifiedTelemetry(
            f"deployment '{deployment}' does not set {ROLE_VARIABLE} in its environment "
            "variables, so its telemetry cannot be told apart from other deployments' (the "
            f"inference server then reports the role name '{DEFAULT_ROLE}' or whatever the "
            f"platform sets, which is not documented); set {ROLE_VARIABLE} to a name unique in "
            "the workspace"
        )
    shared = sorted(d for d, r in roles.items() if d != deployment and r == role)
    if shared:
        raise UnidentifiedTelemetry(
            f"deployment '{deployment}' shares the role name '{role}' ({ROLE_VARIABLE}) with "
            f"deployment(s) {', '.join(shared)} of the same online endpoint; give each its own"
        )
    if role in v1_services:
        raise UnidentifiedTelemetry(
            f"deployment '{deployment}' has the role name '{role}' ({ROLE_VARIABLE}), which is "
            "also a web service of this workspace; give the deployment its own"
        )
    return role


@dataclass(frozen=True)
class Schema:
    """Table and column names of one telemetry schema."""

    name: str
    requests: str
    dependencies: str
    exceptions: str
    traces: str
    time: str
    role: str
    duration: str
    failed: str  # predicate: the request or dependency failed
    target: str
    dependency_type: str
    exception_type: str
    exception_message: str
    dimensions: str
    message: str
    severity: str
    result_code: str


CLASSIC = Schema(
    name="classic",
    requests="requests",
    dependencies="dependencies",
    exceptions="exceptions",
    traces="traces",
    time="timestamp",
    role="cloud_RoleName",
    duration="duration",
    # tostring(): `success` is a string in some classic exports and a bool in others.
    failed='tostring(success) =~ "false"',
    target="target",
    dependency_type="type",
    exception_type="type",
    exception_message="outerMessage",
    dimensions="customDimensions",
    message="message",
    severity="severityLevel",
    result_code="resultCode",
)

WORKSPACE = Schema(
    name="workspace",
    requests="AppRequests",
    dependencies="AppDependencies",
    exceptions="AppExceptions",
    traces="AppTraces",
    time="TimeGenerated",
    role="AppRoleName",
    duration="DurationMs",
    failed="Success == false",
    target="Target",
    dependency_type="DependencyType",
    exception_type="ExceptionType",
    exception_message="OuterMessage",
    dimensions="Properties",
    message="Message",
    severity="SeverityLevel",
    result_code="ResultCode",
)


def requests_view(schema: Schema, endpoint: str, interval: timedelta) -> str:
    """Per bin: request count and rate, average, p50 and p95 duration (ms), failures and rate."""
    s = schema
    seconds = int(interval.total_seconds())
    return (
        f"{s.requests}\n"
        f"| where {s.role} == {string_literal(endpoint)}\n"
        f"| summarize requests = count(), avg_duration_ms = avg({s.duration}),"
        f" p50_duration_ms = percentile({s.duration}, 50),"
        f" p95_duration_ms = percentile({s.duration}, 95), failures = countif({s.failed})"
        f" by bin({s.time}, {timespan_literal(interval)})\n"
        f"| extend requests_per_second = todouble(requests) / {seconds},"
        " failure_rate = todouble(failures) / requests\n"
        f"| project bin_start = {s.time}, requests, requests_per_second, avg_duration_ms,"
        " p50_duration_ms, p95_duration_ms, failures, failure_rate\n"
        "| order by bin_start asc"
    )


def dependencies_view(schema: Schema, endpoint: str, window: timedelta) -> str:
    """Per target: call count and rate over the window, average duration (ms), failure rate."""
    s = schema
    seconds = max(1, int(window.total_seconds()))
    return (
        f"{s.dependencies}\n"
        f"| where {s.role} == {string_literal(endpoint)}\n"
        f"| summarize calls = count(), avg_duration_ms = avg({s.duration}),"
        f" failures = countif({s.failed}) by target = {s.target},"
        f" dependency_type = {s.dependency_type}\n"
        f"| extend calls_per_second = todouble(calls) / {seconds},"
        " failure_rate = todouble(failures) / calls\n"
        "| project target, dependency_type, calls, calls_per_second, avg_duration_ms, failures,"
        " failure_rate\n"
        "| order by calls desc, target asc"
    )


def exceptions_view(schema: Schema, endpoint: str) -> str:
    """Per exception type: how many, when last seen, and the latest message."""
    s = schema
    return (
        f"{s.exceptions}\n"
        f"| where {s.role} == {string_literal(endpoint)}\n"
        f"| summarize exceptions = count(), arg_max({s.time}, {s.exception_message})"
        f" by exception_type = {s.exception_type}\n"
        f"| project exception_type, exceptions, last_seen = {s.time},"
        f" latest_message = {s.exception_message}\n"
        "| order by exceptions desc, exception_type asc"
    )


def traces_view(schema: Schema, endpoint: str, contains: str | None, limit: int) -> str:
    """The newest traces of the endpoint, optionally those whose dimensions contain a text.

    ``contains`` is the source document's ``traces | where customDimensions contains "input"``.
    """
    if not 1 <= limit <= MAX_TRACE_LIMIT:
        raise KqlInputError(f"limit must be between 1 and {MAX_TRACE_LIMIT}")
    s = schema
    where = f"| where {s.dimensions} contains {string_literal(contains)}\n" if contains else ""
    return (
        f"{s.traces}\n"
        f"| where {s.role} == {string_literal(endpoint)}\n"
        f"{where}"
        f"| top {int(limit)} by {s.time} desc\n"
        f"| project timestamp = {s.time}, message = {s.message},"
        f" severity_level = {s.severity}, custom_dimensions = {s.dimensions}"
    )
