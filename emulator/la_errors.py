"""Error bodies of the Log Analytics query API, in the shapes the real service answers.

Where a shape comes from a recording or a published real response it says so; the few that
could not be found in public traffic (the 403 and 429 bodies, the timespan detail) follow the
same outer shape (`{"error": {"code", "message", "correlationId", ...}}`) and are marked as the
emulator's choice, so a reader knows which strings to trust.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

JsonObject = dict[str, Any]

# Kusto's native error code for E_QUERY_RESULT_SET_TOO_LARGE (0x80DA0003 as a signed int32), as
# it appears in the innererror of a real partial response (azure-sdk-for-java recording
# LogsQueryClientTest.testLogsQueryAllowPartialSuccess).
_RESULT_SET_TOO_LARGE_CODE = "-2133196797"
_KUSTO_LIMITS_LINK = "see https://aka.ms/kustoquerylimits"


@dataclass
class LaError(Exception):
    """An error answer: HTTP status, the `error` object and extra response headers."""

    status: int
    error: JsonObject
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> JsonObject:
        """The full response body, `{"error": {...}}`."""
        return {"error": self.error}


def _error(code: str, message: str, **extra: Any) -> JsonObject:
    # Real errors carry a correlationId between code and the optional innererror.
    return {"message": message, "code": code, "correlationId": str(uuid.uuid4()), **extra}


def path_not_found() -> LaError:
    """404 for an unknown route or a malformed workspace id (recorded: bad_workspace_id)."""
    return LaError(404, _error("PathNotFoundError", "The requested path does not exist"))


def workspace_not_found(workspace_id: str) -> LaError:
    """404 for a well-formed workspace id that no workspace has."""
    return LaError(
        404,
        _error(
            "WorkspaceNotFoundError",
            "Workspace could not be found",
            details=[
                {
                    "code": "WorkspaceNotFoundError",
                    "message": f"Workspace '{workspace_id}' could not be found",
                    "target": "workspace",
                    "value": workspace_id,
                }
            ],
        ),
    )


def resource_not_found(resource_id: str) -> LaError:
    """404 for a well-formed ARM resource id that the store does not hold (emulator's choice)."""
    return LaError(
        404,
        _error(
            "ResourceNotFoundError",
            f"The resource '{resource_id}' could not be found",
            details=[
                {
                    "code": "ResourceNotFoundError",
                    "message": "The resource could not be found",
                    "resources": [resource_id],
                }
            ],
        ),
    )


def insufficient_access() -> LaError:
    """403 for an identity outside a workspace's allow-list (message as Azure words it)."""
    return LaError(
        403,
        _error(
            "InsufficientAccessError",
            "The provided credentials have insufficient access to perform the requested operation",
        ),
    )


def bad_argument(message: str, *, target: str | None = None, value: str | None = None) -> LaError:
    """400 BadArgumentError for an invalid request property (body, timespan, batch entry)."""
    detail: JsonObject = {"code": "InvalidParameter", "message": message}
    if target is not None:
        detail["target"] = target
    if value is not None:
        detail["value"] = value
    return LaError(
        400, _error("BadArgumentError", "The request had some invalid properties", details=[detail])
    )


def kql_error(innererror: JsonObject) -> LaError:
    """400 BadArgumentError around the Kusto innererror chain of a rejected query.

    Shape as published in real 400 answers (azure-sdk-for-net/-js troubleshooting guides):
    BadArgumentError > SyntaxError|SemanticError > SYN0002|SEM0100 with the detail.
    """
    return LaError(
        400,
        _error(
            "BadArgumentError", "The request had some invalid properties", innererror=innererror
        ),
    )


def gateway_timeout(wait_s: int) -> LaError:
    """504 after the server timeout (recorded: test_logs_server_timeout, Preference-Applied)."""
    return LaError(
        504,
        _error(
            "GatewayTimeout",
            "Gateway timeout",
            innererror={"code": "GatewayTimeout", "message": "ADX query timed out"},
        ),
        {"Preference-Applied": f"wait={wait_s}"},
    )


def throttled(reason: str, retry_after_s: int) -> LaError:
    """429 with Retry-After. No public recording of this body exists; the code is our choice."""
    return LaError(
        429,
        _error(
            "ThrottledError",
            "Your request has been throttled",
            innererror={"code": reason, "message": _THROTTLE_MESSAGES[reason]},
        ),
        {"Retry-After": str(max(1, retry_after_s))},
    )


_THROTTLE_MESSAGES = {
    "UserRateLimitExceeded": "The user has exceeded the allowed query rate.",
    "ConcurrencyQueueFull": "The user's concurrency queue is full.",
    "ConcurrencyQueueTimeout": "The query waited in the user's concurrency queue for too long.",
}


def internal_error() -> LaError:
    """500 for a bug in the emulator's engine; never echoes the exception text."""
    return LaError(500, _error("InternalServerError", "Something went wrong on the server."))


# Kusto's E_RUNAWAY_QUERY (0x80DA0001 as a signed int32): a query that exceeded a per-node
# resource budget, such as the memory an aggregation may hold.
_RUNAWAY_QUERY_CODE = "-2133196799"


def aggregation_overflow_error(max_groups: int) -> JsonObject:
    """The `error` beside `tables` when a summarize exceeded the emulator's group budget.

    Same outer shape as the recorded partial response (see `partial_error`); the inner code is
    Kusto's E_RUNAWAY_QUERY and the wording is the emulator's (no public recording of this
    failure was found), so tests match on `code`, not on the message.
    """
    return {
        "code": "PartialError",
        "message": "There were some errors when processing your query.",
        "details": [
            {
                "code": "EngineError",
                "message": "Something went wrong processing your query on the server.",
                "innererror": {
                    "code": _RUNAWAY_QUERY_CODE,
                    "message": (
                        f"Aggregation over more than {max_groups} groups exceeded the memory "
                        f"budget (E_RUNAWAY_QUERY; {_KUSTO_LIMITS_LINK})"
                    ),
                    "severity": 2,
                    "severityName": "Error",
                },
            }
        ],
    }


def not_supported_by_emulator(innererror: JsonObject) -> LaError:
    """400 for valid KQL outside the emulator's subset: a code the real service never uses."""
    return LaError(
        400,
        _error(
            "NotSupportedByEmulatorError",
            "The query uses KQL that the emulator does not implement (see emulator/KQL.md); "
            "the real service may run it",
            innererror=innererror,
        ),
    )


def partial_error(kind: str, limit: int) -> JsonObject:
    """The `error` object that sits beside `tables` when a result was cut at a limit.

    Shape copied from a real 200 partial response (azure-sdk-for-java recording
    LogsQueryClientTest.testLogsQueryAllowPartialSuccess); `kind` is "record count" or
    "data size", worded as in Kusto's result-truncation documentation.
    """
    return {
        "code": "PartialError",
        "message": "There were some errors when processing your query.",
        "details": [
            {
                "code": "EngineError",
                "message": "Something went wrong processing your query on the server.",
                "innererror": {
                    "code": _RESULT_SET_TOO_LARGE_CODE,
                    "message": (
                        f"Query result set has exceeded the internal {kind} limit {limit} "
                        f"(E_QUERY_RESULT_SET_TOO_LARGE; {_KUSTO_LIMITS_LINK})"
                    ),
                    "severity": 2,
                    "severityName": "Error",
                },
            }
        ],
    }
