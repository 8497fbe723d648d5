"""Issue 10 item 5: input edge cases get a 400 before anything (the database included) sees them.

- patterns match whole values: a trailing newline passes no pattern of the contract;
- over-long values are 400 on both databases (PostgreSQL used to answer 503);
- unstorable text (lone surrogate, NUL) anywhere in a body is 400, naming the field;
- display names refuse control and format characters (U+202E, zero-width characters).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st

from service.api.openapi import ContractValidator, whole_value_pattern
from service.db.session import Database
from tests.api.helpers import Fingerprint, assert_problem
from tests.support.api import ApiClient, World, new_guid, unique
from tests.support.contract import CONTRACT


@pytest.fixture
def unchanged(database: Database) -> Iterator[None]:
    before = Fingerprint.of(database)
    yield
    assert Fingerprint.of(database) == before


def _patterns() -> list[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.add(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(CONTRACT)
    return sorted(found)


FREE_TEXT_PATTERNS = {r"^[^\x00]+$", r"^[^\x00]*$"}


@pytest.mark.parametrize("pattern", _patterns())
def test_no_contract_pattern_accepts_a_trailing_newline(pattern: str) -> None:
    # A value the pattern accepts (hypothesis finds one), then the same value plus "\n".
    value = find(
        st.from_regex(whole_value_pattern(pattern), fullmatch=True).filter(lambda v: "\n" not in v),
        lambda v: True,
        settings=settings(database=None, suppress_health_check=list(HealthCheck)),
    )
    validator = ContractValidator({"type": "string", "pattern": pattern})
    assert validator.is_valid(value), (pattern, value)
    # The free-text patterns refuse only a NUL (KQL, PEM, a search text): a newline is text.
    assert validator.is_valid(value + "\n") == (pattern in FREE_TEXT_PATTERNS), (pattern, value)


def _tenant(**overrides: Any) -> dict[str, Any]:
    return {"slug": unique("t"), "display_name": "X", "entra_tenant_id": new_guid(), **overrides}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("slug", "contoso\n"),
        ("entra_tenant_id", new_guid() + "\n"),
        ("slug", "a" * 63 + "\n"),  # over-long plus newline: was 503 on PostgreSQL
        ("display_name", "x" * 200 + "\n"),
    ],
)
def test_tenant_values_with_a_trailing_newline_are_400(
    api: ApiClient, admin_key: str, field: str, value: str, unchanged: None
) -> None:
    problem = assert_problem(
        api.post("/v1/tenants", admin_key, json=_tenant(**{field: value})), 400
    )
    assert f"body.{field}" in [e["field"] for e in problem["errors"]]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("slug", "prod\n"),
        ("subscription_id", new_guid() + "\n"),
        ("resource_group", "rg-ml\n"),
        ("resource_group", "r" * 90 + "\n"),  # 91 characters: the column holds 90
        ("workspace_name", "ws-name\n"),
        ("log_analytics_workspace_id", new_guid() + "\n"),
    ],
)
def test_workspace_values_with_a_trailing_newline_are_400(
    api: ApiClient, world: World, admin_key: str, field: str, value: str
) -> None:
    tenant = world.tenant()
    body = {
        "slug": unique("w"),
        "subscription_id": new_guid(),
        "resource_group": "rg",
        "workspace_name": "ws-name",
        field: value,
    }
    problem = assert_problem(
        api.post(f"/v1/tenants/{tenant}/workspaces", admin_key, json=body), 400
    )
    assert f"body.{field}" in [e["field"] for e in problem["errors"]]
    listed = api.get(f"/v1/tenants/{tenant}/workspaces", admin_key).get_json()["items"]
    assert listed == []


def test_a_look_alike_path_with_a_newline_is_400_not_a_second_tenant(
    api: ApiClient, world: World, admin_key: str
) -> None:
    slug = world.tenant()
    problem = assert_problem(api.get(f"/v1/tenants/{slug}%0A", admin_key), 400)
    assert problem["errors"][0]["field"] == "path.tenant"


def test_key_names_with_a_trailing_newline_are_400(
    api: ApiClient, admin_key: str, unchanged: None
) -> None:
    problem = assert_problem(
        api.post("/v1/api-keys", admin_key, json={"name": "ops\n", "role": "reader"}), 400
    )
    assert "body.name" in [e["field"] for e in problem["errors"]]


@pytest.mark.parametrize(
    "name",
    [
        "Contoso\u202e",  # RIGHT-TO-LEFT OVERRIDE (Cf)
        "Con\u200btoso",  # ZERO WIDTH SPACE (Cf)
        "Con\u200dtoso",  # ZERO WIDTH JOINER (Cf)
        "\ufeffContoso",  # BYTE ORDER MARK / ZERO WIDTH NO-BREAK SPACE (Cf)
        "Contoso\u0085",  # NEXT LINE (Cc, above the ASCII range)
        "Contoso\u2066",  # LEFT-TO-RIGHT ISOLATE (Cf)
    ],
)
def test_display_names_refuse_control_and_format_characters(
    api: ApiClient, world: World, admin_key: str, name: str
) -> None:
    tenant = world.tenant()
    before = api.get(f"/v1/tenants/{tenant}", admin_key).get_json()
    for response in (
        api.post("/v1/tenants", admin_key, json=_tenant(display_name=name)),
        api.patch(f"/v1/tenants/{tenant}", admin_key, json={"display_name": name}),
        api.post(
            f"/v1/tenants/{tenant}/workspaces",
            admin_key,
            json={
                "slug": unique("w"),
                "display_name": name,
                "subscription_id": new_guid(),
                "resource_group": "rg",
                "workspace_name": "ws-name",
            },
        ),
    ):
        problem = assert_problem(response, 400, "validation_failed")
        assert "body.display_name" in [e["field"] for e in problem["errors"]]
    assert api.get(f"/v1/tenants/{tenant}", admin_key).get_json() == before


def test_display_names_keep_letters_of_every_script(api: ApiClient, admin_key: str) -> None:
    for name in ("Café Zürich", "東京 チーム", "مرحبا", "Ωmega prod"):
        r = api.post("/v1/tenants", admin_key, json=_tenant(display_name=name))
        assert r.status_code == 201, r.get_data(as_text=True)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"slug": "x", "display_name": "\\ud800", "entra_tenant_id": "x"}',
        b'{"slug": "x", "display_name": "a\\u0000b", "entra_tenant_id": "x"}',
    ],
    ids=["lone surrogate", "NUL"],
)
def test_unstorable_text_in_a_body_is_400_naming_the_field(
    api: ApiClient, admin_key: str, raw: bytes, unchanged: None
) -> None:
    response = api.post("/v1/tenants", admin_key, data=raw, content_type="application/json")
    problem = assert_problem(response, 400, "validation_failed")
    assert problem["errors"][0]["field"] == "body.display_name"


_ENDPOINT = "/v1/tenants/t/workspaces/w/endpoints/e"


@pytest.mark.parametrize(
    ("method", "path", "raw", "field"),
    [
        ("POST", "/v1/tenants/t/workspaces/w/logs/query", b'{"query": "T\\u0000"}', "body.query"),
        (
            "POST",
            "/v1/tenants/t/workspaces/w/logs/query",
            b'{"query": "T", "timespan": "PT1H\\u0000"}',
            "body.timespan",
        ),
        ("GET", f"{_ENDPOINT}/telemetry/traces?contains=a%00", None, "query.contains"),
        ("GET", f"{_ENDPOINT}/telemetry/requests?timespan=P1D%00", None, "query.timespan"),
    ],
    ids=["query", "timespan", "traces contains", "telemetry timespan"],
)
def test_a_nul_in_free_text_is_400_as_the_contract_s_pattern_says(
    api: ApiClient,
    admin_key: str,
    method: str,
    path: str,
    raw: bytes | None,
    field: str,
    unchanged: None,
) -> None:
    """Free text (a KQL query, a search text, a timespan) may hold anything but a NUL: the
    service refuses one, naming the field, and the contract's pattern says so (the contract
    fuzzing generated a schema-valid NUL once they did not)."""
    kwargs: dict[str, Any] = {}
    if raw is not None:
        kwargs = {"data": raw, "content_type": "application/json"}
    response = api.call(method, path, admin_key, **kwargs)
    problem = assert_problem(response, 400, "validation_failed")
    assert problem["errors"][0]["field"] == field
    assert "NUL" in problem["errors"][0]["message"]


def test_an_unstorable_property_name_is_400(
    api: ApiClient, admin_key: str, unchanged: None
) -> None:
    raw = json.dumps(_tenant()).encode()[:-1] + b', "\\udfff": 1}'
    response = api.post("/v1/tenants", admin_key, data=raw, content_type="application/json")
    assert_problem(response, 400, "validation_failed")


def test_a_chunked_body_over_the_limit_is_413_in_the_app_too(
    api: ApiClient, admin_key: str, unchanged: None
) -> None:
    """Without a Content-Length (chunked), the app itself counts: 413, never cut and accepted."""
    body = json.dumps(_tenant(display_name="x" * 150)).encode() + b" " * (2 * 1024 * 1024)
    response = api.call(
        "POST",
        "/v1/tenants",
        admin_key,
        input_stream=io.BytesIO(body),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        # What a server that decodes chunked input (gunicorn) tells the application.
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_problem(response, 413, "payload_too_large")
