"""The API key cache of each process: a revocation anywhere is refused everywhere at once.

Every process shares a revocation counter (Redis, the host's file); without one, another
process's revocation is bounded by the TTL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.adapters.host_coordination import HostCoordination
from service.adapters.redis_coordination import RedisCoordination
from service.db.models import ApiKey
from service.db.session import Database
from service.errors import Unauthorized
from service.ports import CoordinationUnavailable, RevocationFeed
from service.services.api_keys import KeyCache
from service.services.runtime import Runtime
from tests.api.helpers import key_id_of
from tests.support.api import ApiClient, World
from tests.support.clock import Clock

TTL = 2.0


def revoke_in_the_database(database: Database, key_id: str) -> None:
    """As another process does: straight in the database."""
    with database.unit_of_work() as uow:
        row = uow.session.get(ApiKey, key_id)
        assert row is not None
        row.revoked_at = datetime.now(UTC)
        uow.commit()


def test_without_a_shared_counter_another_process_accepts_a_revoked_key_at_most_for_the_ttl(
    world: World, database: Database
) -> None:
    clock = Clock()
    cache = KeyCache(clock=clock)
    secret = world.key("reader")
    first = cache.authenticate(database.unit_of_work, secret, b"", TTL)
    revoke_in_the_database(database, first.key_id)
    clock.now += TTL - 0.01
    assert cache.authenticate(database.unit_of_work, secret, b"", TTL) == first
    clock.now += 0.02
    with pytest.raises(Unauthorized):
        cache.authenticate(database.unit_of_work, secret, b"", TTL)


def test_a_key_revoked_through_this_process_stops_at_once(
    api: ApiClient, world: World, database: Database, admin_key: str, runtime: Runtime
) -> None:
    secret = world.key("reader")
    cache = runtime.access_cache
    cache.authenticate(database.unit_of_work, secret, b"", TTL, scope=database.url)
    assert api.delete(f"/v1/api-keys/{key_id_of(database, secret)}", admin_key).status_code == 204
    with pytest.raises(Unauthorized):
        cache.authenticate(database.unit_of_work, secret, b"", TTL, scope=database.url)


@pytest.fixture(params=["host", "redis"])
def shared_feed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[RevocationFeed]]:
    """Two processes' handles on one revocation counter."""
    if request.param == "host":
        path = str(tmp_path / "coord.db")
        yield [HostCoordination(path), HostCoordination(path)]
        return
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    handles = [RedisCoordination(url, prefix=prefix), RedisCoordination(url, prefix=prefix)]
    yield list(handles)
    for handle in handles:
        handle.close()


def test_a_key_revoked_by_another_process_is_refused_at_the_next_request(
    world: World, database: Database, shared_feed: list[RevocationFeed]
) -> None:
    clock = Clock()  # frozen: the TTL plays no part
    here = KeyCache(revocations=shared_feed[0], clock=clock)
    there = KeyCache(revocations=shared_feed[1], clock=clock)
    secret = world.key("reader")
    principal = here.authenticate(database.unit_of_work, secret, b"", TTL)
    assert here.authenticate(database.unit_of_work, secret, b"", TTL) == principal  # cached
    revoke_in_the_database(database, principal.key_id)
    there.forget_all()  # what revoke_api_key does in the other process after its commit
    with pytest.raises(Unauthorized):
        here.authenticate(database.unit_of_work, secret, b"", TTL)


class DownFeed:
    def stamp(self) -> int:
        raise CoordinationUnavailable("ConnectionError")

    def bump(self) -> None:
        raise CoordinationUnavailable("ConnectionError")


def test_while_the_counter_is_unreachable_every_request_is_checked_in_the_database(
    world: World, database: Database
) -> None:
    cache = KeyCache(revocations=DownFeed(), clock=Clock())
    secret = world.key("reader")
    principal = cache.authenticate(database.unit_of_work, secret, b"", TTL)
    revoke_in_the_database(database, principal.key_id)
    with pytest.raises(Unauthorized):
        cache.authenticate(database.unit_of_work, secret, b"", TTL)
    cache.forget_all()  # an announcement that cannot be made is logged, not raised


def test_a_cached_key_still_expires_on_time(world: World, database: Database) -> None:
    """Expiry reads the injected wall clock, from the cache and from the database alike."""
    wall = [datetime(2031, 1, 1, tzinfo=UTC)]  # any instant: no check reads the real clock
    cache = KeyCache(clock=Clock(), wall_clock=lambda: wall[0])
    secret = world.key("reader")
    principal = cache.authenticate(database.unit_of_work, secret, b"", TTL)
    with database.unit_of_work() as uow:
        row = uow.session.get(ApiKey, principal.key_id)
        assert row is not None
        row.expires_at = wall[0] + timedelta(minutes=5)
        uow.commit()
    cache.forget_all()
    cache.authenticate(database.unit_of_work, secret, b"", TTL)  # cached with its expiry
    wall[0] += timedelta(minutes=5)  # the entry is still fresh (frozen clock): the expiry wins
    with pytest.raises(Unauthorized):
        cache.authenticate(database.unit_of_work, secret, b"", TTL)
    cache.forget_all()  # looked up again in the database, at the same injected instant
    with pytest.raises(Unauthorized):
        cache.authenticate(database.unit_of_work, secret, b"", TTL)


def test_unknown_keys_are_not_cached(world: World, database: Database) -> None:
    cache = KeyCache(clock=Clock())
    with pytest.raises(Unauthorized):
        cache.authenticate(database.unit_of_work, "amlcp_" + "Z" * 43, b"", TTL)
