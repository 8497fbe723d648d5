"""The per-process API key cache: revocation here is immediate, elsewhere bounded by the TTL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from service.db.models import ApiKey
from service.db.session import Database
from service.errors import Unauthorized
from service.services.api_keys import KeyCache, key_cache
from tests.api.helpers import key_id_of
from tests.support.api import ApiClient, World

TTL = 2.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_revoked_by_another_process_is_accepted_at_most_for_the_ttl(
    world: World, database: Database
) -> None:
    clock = Clock()
    cache = KeyCache(clock=clock)
    secret = world.key("reader")
    first = cache.authenticate(database.unit_of_work, secret, b"", TTL)
    with database.unit_of_work() as uow:  # as another process would: straight in the database
        row = uow.session.get(ApiKey, first.key_id)
        assert row is not None
        row.revoked_at = datetime.now(UTC)
        uow.commit()
    clock.now += TTL - 0.01
    assert cache.authenticate(database.unit_of_work, secret, b"", TTL) == first
    clock.now += 0.02
    with pytest.raises(Unauthorized):
        cache.authenticate(database.unit_of_work, secret, b"", TTL)


def test_a_key_revoked_through_this_process_stops_at_once(
    api: ApiClient, world: World, database: Database, admin_key: str
) -> None:
    secret = world.key("reader")
    key_cache.authenticate(database.unit_of_work, secret, b"", TTL, scope=database.url)
    assert api.delete(f"/v1/api-keys/{key_id_of(database, secret)}", admin_key).status_code == 204
    with pytest.raises(Unauthorized):
        key_cache.authenticate(database.unit_of_work, secret, b"", TTL, scope=database.url)


def test_a_cached_key_still_expires_on_time(world: World, database: Database) -> None:
    clock = Clock()
    cache = KeyCache(clock=clock)
    secret = world.key("reader")
    principal = cache.authenticate(database.unit_of_work, secret, b"", TTL)
    with database.unit_of_work() as uow:
        row = uow.session.get(ApiKey, principal.key_id)
        assert row is not None
        row.expires_at = datetime.now(UTC) + timedelta(milliseconds=300)
        uow.commit()
    cache.forget_all()
    cache.authenticate(database.unit_of_work, secret, b"", TTL)  # cached with its expiry
    with database.unit_of_work() as uow:
        row = uow.session.get(ApiKey, principal.key_id)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        uow.commit()
    # The cached expiry (300 ms ahead) is checked on every use; the entry outlives it.
    time.sleep(0.35)
    with pytest.raises(Unauthorized):
        cache.authenticate(database.unit_of_work, secret, b"", TTL)


def test_unknown_keys_are_not_cached(world: World, database: Database) -> None:
    cache = KeyCache(clock=Clock())
    with pytest.raises(Unauthorized):
        cache.authenticate(database.unit_of_work, "amlcp_" + "Z" * 43, b"", TTL)
