"""Authentication: every /v1 call needs a valid bearer key; one 401 answer for every failure."""

from __future__ import annotations

import pytest

from service.db.session import Database
from tests.api.helpers import Fingerprint, assert_problem, key_id_of
from tests.support.api import ApiClient, World


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        "Bearer amlcp_" + "x" * 43,
        "Bearer amlcp_" + "x" * 300,
        "Token amlcp_abc",
    ],
    ids=lambda a: "none" if a is None else repr(a[:20]),
)
def test_a_missing_or_invalid_key_is_401_and_changes_nothing(
    api: ApiClient, database: Database, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    before = Fingerprint.of(database)
    for method, path in (
        ("GET", "/v1/tenants"),
        ("POST", "/v1/tenants"),
        ("DELETE", "/v1/api-keys/00000000-0000-4000-8000-000000000000"),
        ("GET", "/v1/audit-events"),
    ):
        response = api.call(method, path, headers=headers, json={} if method == "POST" else None)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert Fingerprint.of(database) == before


def test_the_401_answer_does_not_say_whether_a_key_ever_existed(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    revoked = world.key("reader")
    api.delete(f"/v1/api-keys/{key_id_of(database, revoked)}", admin_key)
    never = "amlcp_" + "A" * 43
    answers = [api.get("/v1/tenants", secret).get_json()["detail"] for secret in (revoked, never)]
    assert answers[0] == answers[1]


def test_the_bearer_scheme_is_case_insensitive(api: ApiClient, admin_key: str) -> None:
    response = api.get(
        "/v1/tenants", headers={"Authorization": f"bearer {admin_key}"}, query_string={"limit": "1"}
    )
    assert response.status_code == 200


def test_health_routes_need_no_key(api: ApiClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.yaml"):
        assert api.get(path).status_code == 200


def test_an_unknown_v1_route_needs_a_key_before_it_is_reported_missing(
    api: ApiClient, admin_key: str
) -> None:
    assert_problem(api.get("/v1/nope", validate=False), 401, "unauthorized")
    assert_problem(api.get("/v1/nope", admin_key, validate=False), 404, "not_found")
