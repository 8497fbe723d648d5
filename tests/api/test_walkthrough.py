"""The demo walkthrough's convergence steps, run against an API whose operations span pages."""

from __future__ import annotations

from sqlalchemy import update

from demo.walkthrough import CONTOSO, STEPS, Step
from service.db.models import Operation
from service.db.session import Database
from service.db.types import utcnow
from tests.support.api import ApiClient, World


def _for(step: Step, tenant: str) -> str:
    return step.path.replace(f"/tenants/{CONTOSO}/", f"/tenants/{tenant}/").replace(
        f"tenant={CONTOSO}", f"tenant={tenant}"
    )


def test_the_convergence_step_counts_operations_beyond_the_first_page(
    api: ApiClient, world: World, admin_key: str, database: Database
) -> None:
    tenant = world.tenant()
    world.endpoints(tenant, world.workspace(tenant), [f"ep-{i:02}" for i in range(20)])
    change = api.put(f"/v1/tenants/{tenant}/policy", admin_key, json={"app_insights": True})
    ids = [op["id"] for op in change.json["operations"]]
    assert len(ids) > 10
    # What a first page of 10 shows; leave one operation *not* on it queued, finish the rest.
    first_page = api.get("/v1/operations", admin_key, query_string={"tenant": tenant, "limit": 10})
    shown = {op["id"] for op in first_page.json["items"]}
    left = next(i for i in ids if i not in shown)
    with database.unit_of_work() as uow:
        uow.session.execute(
            update(Operation)
            .where(Operation.id.in_([i for i in ids if i != left]))
            .values(state="succeeded", finished_at=utcnow())
        )
        uow.commit()

    converge, failed = STEPS[3], STEPS[4]
    report = api.get(_for(converge, tenant), admin_key).json
    assert report["totals"]["pending"] == 1, "one operation is still queued: not converged"
    assert api.get(_for(failed, tenant), admin_key).json["items"] == []
