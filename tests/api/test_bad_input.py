"""Every class of bad input gets a clear 4xx problem+json and changes nothing at all."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from service.db.session import Database
from tests.api.helpers import Fingerprint, assert_problem
from tests.support.api import ApiClient, World, new_guid, unique


@pytest.fixture
def unchanged(database: Database) -> Iterator[None]:
    """The database is exactly as it was before the test's requests."""
    before = Fingerprint.of(database)
    yield
    assert Fingerprint.of(database) == before


@pytest.fixture
def slug(world: World) -> str:
    """A tenant to aim at (request it before ``unchanged``, so it exists before the snapshot)."""
    return world.tenant()


def _tenant_body(**overrides: Any) -> dict[str, Any]:
    return {"slug": unique("t"), "display_name": "X", "entra_tenant_id": new_guid(), **overrides}


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": value}).encode()).decode().rstrip("=")


MALFORMED = [
    b"{",
    b'{"slug": "a",}',
    b"NaN",
    b'{"slug": Infinity}',
    b"\xff\xfe{}",
    b"[" * 50_000 + b"]" * 50_000,  # nested too deeply for the parser (used to be a 500)
]


@pytest.mark.parametrize("raw", MALFORMED, ids=lambda b: repr(b[:24]))
def test_malformed_json_is_400(api: ApiClient, admin_key: str, raw: bytes, unchanged: None) -> None:
    response = api.post("/v1/tenants", admin_key, data=raw, content_type="application/json")
    problem = assert_problem(response, 400, "validation_failed")
    assert problem["errors"][0]["field"] == "body"
    assert problem["errors"][0]["message"].startswith("malformed JSON")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_tenant_body(slug=5), "body.slug"),
        (_tenant_body(display_name=["x"]), "body.display_name"),
        (_tenant_body(entra_tenant_id=None), "body.entra_tenant_id"),
        (_tenant_body(display_name=""), "body.display_name"),
        (_tenant_body(display_name="x" * 201), "body.display_name"),
        (_tenant_body(display_name="tab\there"), "body.display_name"),
        (_tenant_body(slug="Upper"), "body.slug"),
        (_tenant_body(slug="-lead"), "body.slug"),
        (_tenant_body(entra_tenant_id="not-a-guid"), "body.entra_tenant_id"),
        ([], "body"),
        ("tenant", "body"),
        (None, "body"),
    ],
)
def test_wrong_types_and_values_are_400_naming_the_field(
    api: ApiClient, admin_key: str, body: Any, field: str, unchanged: None
) -> None:
    response = api.post(
        "/v1/tenants", admin_key, data=json.dumps(body), content_type="application/json"
    )
    problem = assert_problem(response, 400, "validation_failed")
    assert field in [e["field"] for e in problem["errors"]]


def test_missing_and_unknown_fields_are_400_and_secrets_are_not_echoed(
    api: ApiClient, admin_key: str, unchanged: None
) -> None:
    body = {k: v for k, v in _tenant_body().items() if k != "slug"}
    body["password"] = "hunter2-very-secret"
    problem = assert_problem(api.post("/v1/tenants", admin_key, json=body), 400)
    fields = [e["field"] for e in problem["errors"]]
    assert "body.slug" in fields
    assert "body.password" in fields
    assert "hunter2" not in json.dumps(problem)


def test_an_empty_or_absent_body_is_400(
    api: ApiClient, slug: str, admin_key: str, unchanged: None
) -> None:
    assert_problem(api.post("/v1/tenants", admin_key), 400, "validation_failed")
    assert_problem(
        api.patch(f"/v1/tenants/{slug}", admin_key, data=b"", content_type="application/json"),
        400,
    )
    assert_problem(api.patch(f"/v1/tenants/{slug}", admin_key, json={}), 400)


def test_an_oversize_body_is_413(
    api: ApiClient, slug: str, admin_key: str, unchanged: None
) -> None:
    huge = json.dumps(_tenant_body(display_name="x" * (2 * 1024 * 1024)))
    for method, path in (("POST", "/v1/tenants"), ("PATCH", f"/v1/tenants/{slug}")):
        response = api.call(method, path, admin_key, data=huge, content_type="application/json")
        assert_problem(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
def test_a_body_that_is_not_json_is_415(
    api: ApiClient, admin_key: str, content_type: str | None, unchanged: None
) -> None:
    response = api.post(
        "/v1/tenants",
        admin_key,
        data=json.dumps(_tenant_body()),
        headers={} if content_type is None else {"Content-Type": content_type},
    )
    assert_problem(response, 415, "unsupported_media_type")


def test_merge_patch_json_is_accepted_only_where_the_contract_says(
    api: ApiClient, admin_key: str, unchanged: None
) -> None:
    response = api.post(
        "/v1/tenants",
        admin_key,
        data=json.dumps(_tenant_body()),
        content_type="application/merge-patch+json",
    )
    assert_problem(response, 415)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/tenants/UPPER",
        "/v1/tenants/has_underscore",
        "/v1/tenants/" + "a" * 64,
        "/v1/tenants/ok/workspaces/-bad",
        "/v1/tenants/ok/workspaces/ok/endpoints/.dot-first",
        "/v1/api-keys/not-a-uuid",
        "/v1/api-keys/00000000-0000-4000-8000-00000000000G",
        "/v1/api-keys/00000000-0000-4000-8000-00000000000A",
    ],
)
def test_a_malformed_id_in_the_path_is_400(
    api: ApiClient, admin_key: str, path: str, unchanged: None
) -> None:
    problem = assert_problem(api.get(path, admin_key), 400, "validation_failed")
    assert problem["errors"][0]["field"].startswith("path.")
    if path.startswith("/v1/tenants/") and path.count("/") == 3:
        assert_problem(api.delete(path, admin_key), 400)
        assert_problem(api.patch(path, admin_key, json={"display_name": "x"}), 400)


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/v1/tenants", {"color": "red"}, "query.color"),
        ("/v1/tenants", {"tenant": "a"}, "query.tenant"),
        ("/v1/tenants", {"limit": "0"}, "query.limit"),
        ("/v1/tenants", {"limit": "201"}, "query.limit"),
        ("/v1/tenants", {"limit": "ten"}, "query.limit"),
        ("/v1/tenants", {"limit": "1.5"}, "query.limit"),
        ("/v1/tenants", {"limit": ["1", "2"]}, "query.limit"),
        ("/v1/audit-events", {"action": "DROP TABLE"}, "query.action"),
        ("/v1/audit-events", {"target_id": "a b"}, "query.target_id"),
        ("/v1/api-keys", {"tenant": "Bad_Slug"}, "query.tenant"),
    ],
)
def test_unknown_repeated_or_invalid_query_parameters_are_400(
    api: ApiClient, admin_key: str, path: str, query: dict[str, Any], field: str, unchanged: None
) -> None:
    problem = assert_problem(api.get(path, admin_key, query_string=query), 400)
    assert field in [e["field"] for e in problem["errors"]]


@pytest.mark.parametrize(
    ("path", "cursor"),
    [
        ("/v1/tenants", "not base64 at all!"),
        ("/v1/tenants", "bm90anNvbg"),  # "notjson"
        ("/v1/tenants", _cursor(5)),  # an int where an id is expected
        ("/v1/audit-events", _cursor("01a2")),  # an id where an int is expected
        ("/v1/audit-events", _cursor(True)),
        ("/v1/audit-events", _cursor(10**30)),  # overflowed BIGINT/SQLite: used to be a 500
        ("/v1/tenants", _cursor("\x00")),  # NUL: PostgreSQL refused it with a 503
        ("/v1/tenants", _cursor("\ud800")),  # lone surrogate: used to be a 500
        ("/v1/tenants", base64.urlsafe_b64encode(b'{"x": 1}').decode().rstrip("=")),
        ("/v1/api-keys", "x" * 201),
    ],
)
def test_a_cursor_the_api_did_not_issue_is_400(
    api: ApiClient, admin_key: str, path: str, cursor: str, unchanged: None
) -> None:
    problem = assert_problem(api.get(path, admin_key, query_string={"cursor": cursor}), 400)
    assert problem["errors"][0]["field"] in ("cursor", "query.cursor")


def test_a_method_the_route_does_not_have_is_405_with_allow(
    api: ApiClient, admin_key: str, unchanged: None
) -> None:
    response = api.call("PUT", "/v1/tenants", admin_key, json={}, validate=False)
    assert_problem(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_a_too_long_if_match_header_is_400(
    api: ApiClient, slug: str, admin_key: str, unchanged: None
) -> None:
    response = api.patch(
        f"/v1/tenants/{slug}",
        admin_key,
        json={"display_name": "x"},
        headers={"If-Match": '"1", ' * 300},
    )
    problem = assert_problem(response, 400)
    assert problem["errors"][0]["field"] == "header.If-Match"
