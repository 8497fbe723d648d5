"""Which role name identifies a v2 deployment's records (``telemetry_views.online_role``)."""

from __future__ import annotations

import pytest

from service.domain.telemetry_views import DEFAULT_ROLE, UnidentifiedTelemetry, online_role


def test_a_deployment_is_identified_by_its_own_service_name() -> None:
    roles = {"blue": "churn-blue", "green": "churn-green"}
    assert online_role("blue", roles, {"churn"}) == "churn-blue"
    assert online_role("green", roles, set()) == "churn-green"


@pytest.mark.parametrize(
    ("roles", "v1", "why"),
    [
        ({"blue": None, "green": "g"}, set(), "does not set SERVICE_NAME"),
        ({"blue": "", "green": "g"}, set(), "does not set SERVICE_NAME"),
        ({"blue": DEFAULT_ROLE}, set(), "does not set SERVICE_NAME"),
        ({"blue": "same", "green": "same"}, set(), r"with deployment\(s\) green"),
        ({"blue": "churn"}, {"churn"}, "also a web service"),
        ({}, set(), "does not set SERVICE_NAME"),  # the deployment is gone
    ],
)
def test_a_role_other_targets_may_share_is_refused(
    roles: dict[str, str | None], v1: set[str], why: str
) -> None:
    with pytest.raises(UnidentifiedTelemetry, match=why):
        online_role("blue", roles, v1)
