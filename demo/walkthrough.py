"""The demo walkthrough as data: printed as curl commands, executed as-is by the e2e test."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

CONTOSO = "contoso"
FABRIKAM = "fabrikam"
PROD = "prod"
DEMO_ENDPOINT = "churn-01"
DELEGATED_USER = "carol@fabrikam.example"
FABRIKAM_SUB = "1a7d3b2f-2c3d-4e4f-9a5b-6c7d8e9f0a12"  # in the demo fleet, Fabrikam's tenant


@dataclass(frozen=True)
class Step:
    """One call of the walkthrough."""

    title: str
    method: str
    path: str
    body: dict[str, Any] | None = None
    expect: tuple[int, ...] = (200,)
    note: str = ""
    # Set when the step's path needs a value an earlier step returned, e.g. "{login_id}".
    needs: tuple[str, ...] = field(default_factory=tuple)


ENDPOINT = f"/v1/tenants/{CONTOSO}/workspaces/{PROD}/endpoints/{DEMO_ENDPOINT}"
V2_ENDPOINT = "churn-v2"
V2_DEPLOYMENT = f"{V2_ENDPOINT}.blue"  # targets of SDK v2 are named {endpoint}.{deployment}
V2_TARGET = f"/v1/tenants/{CONTOSO}/workspaces/{PROD}/endpoints/{V2_DEPLOYMENT}"

STEPS: tuple[Step, ...] = (
    Step(
        "Endpoints discovered in Contoso's production workspace",
        "GET",
        f"/v1/tenants/{CONTOSO}/workspaces/{PROD}/endpoints?limit=5",
    ),
    Step(
        "Compliance of every Contoso endpoint, by workspace",
        "GET",
        f"/v1/tenants/{CONTOSO}/compliance",
    ),
    Step(
        "Policy: App Insights on for every Contoso endpoint, enforced",
        "PUT",
        f"/v1/tenants/{CONTOSO}/policy",
        body={"app_insights": True, "mode": "enforce"},
        expect=(200, 201, 202),
        note=(
            "the demo starts Contoso in audit mode (drift reported, nothing changed); enforcing "
            "answers 202 with the operations it queued, and the reconciler applies them"
        ),
    ),
    Step(
        "Watch the policy converge: compliance totals (repeat until 'pending' is 0)",
        "GET",
        f"/v1/tenants/{CONTOSO}/compliance",
        note=(
            "'pending' counts endpoints whose operations are queued or running, across every "
            "page; then 'compliant' holds them all and 'drifted' and 'failed' are 0"
        ),
    ),
    Step(
        "Operations that failed, with their errors (an empty list: none did)",
        "GET",
        f"/v1/operations?tenant={CONTOSO}&state=failed",
    ),
    Step(
        f"Request rate, p50/p95 duration and failure rate of {DEMO_ENDPOINT} per hour",
        "GET",
        f"{ENDPOINT}/telemetry/requests?timespan=P1D&interval=PT1H",
    ),
    Step(
        "What score.py printed: the latest traces containing 'input'",
        "GET",
        f"{ENDPOINT}/telemetry/traces?contains=input&limit=5",
    ),
    Step("Container logs of the endpoint", "GET", f"{ENDPOINT}/container-logs?tail=20"),
    Step(
        "Delegated sign-in for Fabrikam: start a device login",
        "POST",
        f"/v1/tenants/{FABRIKAM}/credential/device-logins",
        expect=(202,),
        note=(
            "open the verification_uri it returns (the emulator's sign-in page), enter the "
            f"user_code and approve as {DELEGATED_USER}"
        ),
    ),
    Step(
        "... then read the sign-in until it is 'succeeded'",
        "GET",
        f"/v1/tenants/{FABRIKAM}/credential/device-logins/{{login_id}}",
        needs=("login_id",),
    ),
    Step(
        "Fabrikam's credential now holds the signed-in user",
        "POST",
        f"/v1/tenants/{FABRIKAM}/credential/verify",
    ),
    Step(
        "Register Fabrikam's workspace: its credential now reaches the subscription",
        "POST",
        f"/v1/tenants/{FABRIKAM}/workspaces",
        body={
            "slug": "analytics",
            "display_name": "Fabrikam analytics",
            "subscription_id": FABRIKAM_SUB,
            "resource_group": "rg-analytics",
            "workspace_name": "fabrikam-ml",
            "app_insights_resource_id": (
                f"/subscriptions/{FABRIKAM_SUB}/resourceGroups/rg-analytics"
                "/providers/Microsoft.Insights/components/fabrikam-ai"
            ),
            "log_analytics_workspace_id": "33d4e5f6-a7b8-4930-9c2d-e3f4a5b6c7d8",
        },
        expect=(201,),
        note=(
            "the service lists the subscriptions Fabrikam's credential reaches and checks that "
            "Resource Manager puts this one in Fabrikam's Entra tenant"
        ),
    ),
    Step(
        "Fabrikam's endpoints, discovered by the reconciler at once (no sync needed)",
        "GET",
        f"/v1/tenants/{FABRIKAM}/workspaces/analytics/endpoints?limit=5",
        note=(
            "a workspace is listed as soon as it is registered, and again whenever its "
            "tenant's credential becomes usable"
        ),
    ),
    Step(
        f"An online deployment (SDK v2) is governed too: {V2_DEPLOYMENT}, kind managed_online",
        "GET",
        V2_TARGET,
        note="rolls_instances: true - a change is a full PUT of the deployment, rolled out",
    ),
    Step(
        f"Policy for every deployment of online endpoint {V2_ENDPOINT}: model data collection on",
        "PUT",
        f"/v1/tenants/{CONTOSO}/workspaces/{PROD}/endpoints/{V2_ENDPOINT}/policy",
        body={"model_data_collection": True, "max_parallel_updates": 1},
        expect=(202,),
        note="one deployment of the endpoint is updated at a time; the others wait their turn",
    ),
    Step(
        f"Container logs of {V2_DEPLOYMENT} (its inference server)",
        "GET",
        f"{V2_TARGET}/container-logs?tail=20",
    ),
)


# Retention (issue 13): Contoso's workspaces export their App tables through Log Analytics data
# export rules to a storage account in their own region (the dev workspace is in northeurope, so
# it overrides the destination); the exported rows land in Azurite.
RETENTION_GROUP = "/subscriptions/0f6c2a1e-1b2c-4d3e-8f4a-5b6c7d8e9f01/resourceGroups/rg-retention"
RETENTION_STORAGE = f"{RETENTION_GROUP}/providers/Microsoft.Storage/storageAccounts/contosokeepwe"
RETENTION_STORAGE_DEV = (
    f"{RETENTION_GROUP}/providers/Microsoft.Storage/storageAccounts/contosokeepne"
)

RETENTION_STEPS: tuple[Step, ...] = (
    Step(
        "Retention: export the four App tables of every Contoso workspace to a storage account",
        "PUT",
        f"/v1/tenants/{CONTOSO}/retention-policy",
        body={"destination_resource_id": RETENTION_STORAGE},
        expect=(202,),
        note="tables default to AppRequests, AppTraces, AppDependencies, AppExceptions",
    ),
    Step(
        "... the dev workspace (northeurope) exports to a storage account in its own region",
        "PUT",
        f"/v1/tenants/{CONTOSO}/workspaces/dev/retention-policy",
        body={"destination_resource_id": RETENTION_STORAGE_DEV},
        expect=(202,),
        note="Azure requires the destination in the workspace's region",
    ),
    Step(
        "Discover the export rules of the production workspace now (queues the missing rule)",
        "POST",
        f"/v1/tenants/{CONTOSO}/workspaces/{PROD}/retention/sync",
    ),
    Step(
        "... and of the dev workspace",
        "POST",
        f"/v1/tenants/{CONTOSO}/workspaces/dev/retention/sync",
    ),
    Step(
        "Watch retention converge (repeat until every workspace is 'compliant')",
        "GET",
        f"/v1/tenants/{CONTOSO}/retention",
        note=(
            "disable the rule by hand (ARM PUT with enable=false) and sync again: the drift is "
            "repaired; rows ingested from now on land in Azurite, container am-apprequests"
        ),
    ),
)


def curl(step: Step, base_url: str, ca_path: str, values: dict[str, str] | None = None) -> str:
    """The step as a copy-pasteable curl command (the key comes from $AMLCP_KEY)."""
    path = step.path.format(**(values or {})) if step.needs else step.path
    command = f'curl -s --cacert {shlex.quote(ca_path)} -H "Authorization: Bearer $AMLCP_KEY"'
    if step.method != "GET":
        command += f" -X {step.method}"
    if step.body is not None:
        command += " -H 'Content-Type: application/json' -d " + shlex.quote(json.dumps(step.body))
    return f"{command} {shlex.quote(base_url + path)}"


def compat_snippet(base_url: str, ca_path: str, la_workspace_id: str) -> str:
    """The unmodified azure-monitor-query client pointed at the service's compat endpoint."""
    return f"""\
REQUESTS_CA_BUNDLE={ca_path} .venv/bin/python - <<'PY'
import os, time
from azure.core.credentials import AccessToken
from azure.monitor.query import LogsQueryClient

class ApiKey:  # the service takes its API key as the bearer token
    def get_token(self, *scopes, **kwargs):
        return AccessToken(os.environ["AMLCP_KEY"], int(time.time()) + 3600)

client = LogsQueryClient(ApiKey(), endpoint="{base_url}/loganalytics")
result = client.query_workspace(
    "{la_workspace_id}",
    "AppRequests | summarize count() by AppRoleName | top 5 by count_",
    timespan=None,
)
for row in result.tables[0].rows:
    print(list(row))
PY"""
