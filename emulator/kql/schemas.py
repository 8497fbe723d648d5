"""Column schemas of the Application Insights tables, classic and workspace-based.

Classic (``requests``...) columns and types are those of the App Insights query-schema example
(azure-rest-api-specs, applicationinsights data-plane v1); ``AppRequests`` follows a recorded
Log Analytics response (azure-sdk-for-python test_logs_query_result_row_type); the other App*
tables follow the Azure Monitor table reference, in the same column order style. Hidden
columns (``_BilledSize``, ``_IsBillable``) are left out, as query results leave them out.
"""

from __future__ import annotations

from typing import Final

from .model import Column


def _columns(spec: str) -> tuple[Column, ...]:
    """``"name:type name2:type2"`` -> columns (type defaults to string)."""
    out = []
    for item in spec.split():
        name, _, kql_type = item.partition(":")
        out.append(Column(name, kql_type or "string"))
    return tuple(out)


_CLASSIC_TAIL: Final = (
    "customDimensions:dynamic customMeasurements:dynamic operation_Name operation_Id "
    "operation_ParentId operation_SyntheticSource session_Id user_Id user_AuthenticatedId "
    "user_AccountId application_Version client_Type client_Model client_OS client_IP client_City "
    "client_StateOrProvince client_CountryOrRegion client_Browser cloud_RoleName "
    "cloud_RoleInstance appId appName iKey sdkVersion itemId itemType itemCount:int"
)

CLASSIC_COLUMNS: Final[dict[str, tuple[Column, ...]]] = {
    "requests": _columns(
        "timestamp:datetime id source name url success resultCode duration:real "
        "performanceBucket " + _CLASSIC_TAIL
    ),
    "dependencies": _columns(
        "timestamp:datetime id target type name data success resultCode duration:real "
        "performanceBucket " + _CLASSIC_TAIL
    ),
    "exceptions": _columns(
        "timestamp:datetime problemId handledAt type message assembly method outerType "
        "outerMessage outerAssembly outerMethod innermostType innermostMessage innermostAssembly "
        "innermostMethod severityLevel:int details:dynamic " + _CLASSIC_TAIL
    ),
    "traces": _columns("timestamp:datetime message severityLevel:int " + _CLASSIC_TAIL),
}


def _app_tail(links: bool) -> str:
    return (
        "Properties:dynamic Measurements:dynamic OperationName OperationId "
        + ("OperationLinks:dynamic " if links else "")
        + "ParentId SyntheticSource SessionId UserId UserAuthenticatedId UserAccountId AppVersion "
        "AppRoleName AppRoleInstance ClientType ClientModel ClientOS ClientIP ClientCity "
        "ClientStateOrProvince ClientCountryOrRegion ClientBrowser ResourceGUID IKey SDKVersion "
        "ItemCount:int ReferencedItemId ReferencedType SourceSystem Type _ResourceId"
    )


WORKSPACE_COLUMNS: Final[dict[str, tuple[Column, ...]]] = {
    "AppRequests": _columns(
        "TenantId TimeGenerated:datetime Id Source Name Url Success:bool ResultCode "
        "DurationMs:real PerformanceBucket " + _app_tail(links=True)
    ),
    "AppDependencies": _columns(
        "TenantId TimeGenerated:datetime Id Target DependencyType Name Data Success:bool "
        "ResultCode DurationMs:real PerformanceBucket " + _app_tail(links=False)
    ),
    "AppExceptions": _columns(
        "TenantId TimeGenerated:datetime ProblemId HandledAt ExceptionType Message Assembly "
        "Method OuterType OuterMessage OuterAssembly OuterMethod InnermostType InnermostMessage "
        "InnermostAssembly InnermostMethod SeverityLevel:int Details:dynamic "
        + _app_tail(links=False)
    ),
    "AppTraces": _columns(
        "TenantId TimeGenerated:datetime Message SeverityLevel:int " + _app_tail(links=False)
    ),
}

_BUCKETS: Final = (
    (250, "<250ms"),
    (500, "250ms-500ms"),
    (1000, "500ms-1sec"),
    (3000, "1sec-3sec"),
    (7000, "3sec-7sec"),
    (15000, "7sec-15sec"),
    (30000, "15sec-30sec"),
    (60000, "30sec-1min"),
    (120000, "1min-2min"),
    (300000, "2min-5min"),
)


def performance_bucket(duration_ms: float) -> str:
    """App Insights' ``performanceBucket`` label for a duration."""
    for limit, label in _BUCKETS:
        if duration_ms < limit:
            return label
    return ">=5min"
