"""When a pooled connection is pinged before use (service.db.session.needs_ping)."""

from __future__ import annotations

import pytest

from service.db.session import needs_ping


@pytest.mark.parametrize(
    ("returned_at", "now", "expected"),
    [
        (None, 100.0, False),  # new from the database: nothing to check
        (99.0, 100.0, False),  # back a second ago: in use, alive
        (95.1, 100.0, False),
        (95.0, 100.0, True),  # sat idle the whole threshold
        (10.0, 100.0, True),
    ],
)
def test_only_a_connection_that_sat_idle_is_pinged(
    returned_at: float | None, now: float, expected: bool
) -> None:
    assert needs_ping(returned_at, now, 5.0) is expected
