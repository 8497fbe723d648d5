"""ETags and If-Match: PATCH and DELETE apply only to the version the caller last saw."""

from __future__ import annotations

import pytest

from service.db.session import Database
from tests.api.helpers import Fingerprint, assert_problem
from tests.support.api import ApiClient, World


@pytest.fixture
def paths(world: World) -> dict[str, str]:
    tenant = world.tenant()
    workspace = world.workspace(tenant)
    return {
        "tenant": f"/v1/tenants/{tenant}",
        "workspace": f"/v1/tenants/{tenant}/workspaces/{workspace}",
    }


@pytest.mark.parametrize("kind", ["tenant", "workspace"])
@pytest.mark.parametrize("if_match", ['"1"', "*", '"7", "1"', '"7","1" , "9"', ' "1" '], ids=repr)
def test_a_patch_with_a_matching_if_match_applies(
    api: ApiClient, paths: dict[str, str], admin_key: str, kind: str, if_match: str
) -> None:
    response = api.patch(
        paths[kind], admin_key, json={"display_name": "v2"}, headers={"If-Match": if_match}
    )
    assert response.status_code == 200
    assert response.headers["ETag"] == response.get_json()["etag"] == '"2"'


@pytest.mark.parametrize("kind", ["tenant", "workspace"])
@pytest.mark.parametrize("if_match", ['"2"', 'W/"1"', "1", '"1"x', '""', ","], ids=repr)
def test_a_stale_weak_or_malformed_if_match_is_412_and_changes_nothing(
    api: ApiClient,
    paths: dict[str, str],
    database: Database,
    admin_key: str,
    kind: str,
    if_match: str,
) -> None:
    before = Fingerprint.of(database)
    for method, body in (("PATCH", {"display_name": "v2"}), ("DELETE", None)):
        response = api.call(
            method, paths[kind], admin_key, json=body, headers={"If-Match": if_match}
        )
        problem = assert_problem(response, 412, "precondition_failed")
        assert problem["current_etag"] == '"1"'
    assert Fingerprint.of(database) == before


def test_a_lost_update_is_prevented(api: ApiClient, paths: dict[str, str], admin_key: str) -> None:
    seen = api.get(paths["workspace"], admin_key).headers["ETag"]
    first = api.patch(
        paths["workspace"], admin_key, json={"display_name": "A"}, headers={"If-Match": seen}
    )
    assert first.status_code == 200
    second = api.patch(
        paths["workspace"], admin_key, json={"display_name": "B"}, headers={"If-Match": seen}
    )
    assert_problem(second, 412)
    assert api.get(paths["workspace"], admin_key).get_json()["display_name"] == "A"


def test_a_delete_with_the_current_etag_applies(
    api: ApiClient, paths: dict[str, str], admin_key: str
) -> None:
    api.patch(paths["workspace"], admin_key, json={"display_name": "v2"})
    assert api.delete(paths["workspace"], admin_key, headers={"If-Match": '"2"'}).status_code == 204
    assert api.delete(paths["tenant"], admin_key, headers={"If-Match": '"1"'}).status_code == 204


def test_a_no_op_patch_keeps_the_etag(
    api: ApiClient, paths: dict[str, str], admin_key: str
) -> None:
    etag = api.get(paths["tenant"], admin_key).headers["ETag"]
    name = api.get(paths["tenant"], admin_key).get_json()["display_name"]
    response = api.patch(
        paths["tenant"], admin_key, json={"display_name": name}, headers={"If-Match": etag}
    )
    assert response.headers["ETag"] == etag
