"""One rule for each convention across the API: "not set", field names in errors, 204s, ETags."""

from __future__ import annotations

from typing import Any

from tests.api.helpers import assert_problem
from tests.support.api import ApiClient, World, new_guid, unique


def _tenant_body(**overrides: Any) -> dict[str, Any]:
    return {"slug": unique("t"), "display_name": "X", "entra_tenant_id": new_guid(), **overrides}


def test_a_credential_that_is_not_set_is_404_like_a_policy_and_using_it_is_409(
    api: ApiClient, world: World, admin_key: str
) -> None:
    tenant = f"/v1/tenants/{world.tenant()}"
    for path in (f"{tenant}/credential", f"{tenant}/policy"):
        for method in ("GET", "DELETE"):
            problem = assert_problem(api.call(method, path, admin_key), 404, "not_found")
            assert "no " in problem["detail"]
    # Using a feature that needs the credential is a conflict with the tenant's state.
    assert_problem(api.post(f"{tenant}/credential/verify", admin_key), 409, "credential_missing")


def test_errors_name_the_unknown_or_missing_field_itself(api: ApiClient, admin_key: str) -> None:
    body = {k: v for k, v in _tenant_body(colour="blue").items() if k != "slug"}
    problem = assert_problem(api.post("/v1/tenants", admin_key, json=body), 400)
    assert {(e["field"], e["message"]) for e in problem["errors"]} == {
        ("body.colour", "is not a field this request accepts"),
        ("body.slug", "is required"),
    }


def test_an_unknown_field_inside_one_of_the_alternatives_is_named_too(
    api: ApiClient, world: World, admin_key: str
) -> None:
    body = {"kind": "host_identity", "colour": "blue"}
    problem = assert_problem(
        api.put(f"/v1/tenants/{world.tenant()}/credential", admin_key, json=body), 400
    )
    assert "body.colour" in [e["field"] for e in problem["errors"]]


def test_an_empty_display_name_is_one_error_for_one_field(api: ApiClient, admin_key: str) -> None:
    problem = assert_problem(
        api.post("/v1/tenants", admin_key, json=_tenant_body(display_name="")), 400
    )
    assert problem["errors"] == [
        {"field": "body.display_name", "message": "must be at least 1 characters"}
    ]


def test_204_responses_carry_no_content_type(api: ApiClient, world: World, admin_key: str) -> None:
    slug = world.tenant()
    created = api.post("/v1/api-keys", admin_key, json={"name": unique("k"), "role": "reader"})
    responses = [
        api.delete(f"/v1/api-keys/{created.json['api_key']['id']}", admin_key),
        api.delete(f"/v1/tenants/{slug}", admin_key),
    ]
    for response in responses:
        assert response.status_code == 204
        assert "Content-Type" not in response.headers
        assert response.get_data() == b""


def test_the_json_etag_is_the_quoted_header_value_and_goes_back_as_if_match(
    api: ApiClient, world: World, admin_key: str
) -> None:
    path = f"/v1/tenants/{world.tenant()}"
    read = api.get(path, admin_key)
    assert read.json["etag"] == read.headers["ETag"] == '"1"'
    renamed = api.patch(
        path, admin_key, json={"display_name": "Y"}, headers={"If-Match": read.json["etag"]}
    )
    assert renamed.status_code == 200
    assert renamed.json["etag"] == renamed.headers["ETag"] != read.json["etag"]
