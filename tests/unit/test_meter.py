"""The use cases count through the runtime's Meter (a port), never Prometheus directly."""

from __future__ import annotations

import pytest

from service.config import LogQuerySettings
from service.errors import TooManyRequests
from service.services.query_shaping import TrafficShaper
from tests.support.meter import RecordingMeter


def test_a_query_refused_for_the_rate_budget_is_counted_on_the_meter() -> None:
    meter = RecordingMeter()
    shaper = TrafficShaper(LogQuerySettings(rate_limit=1, rate_window_s=30), meter=meter)
    with shaper.slot("tenant", "key"):
        pass
    with pytest.raises(TooManyRequests), shaper.slot("tenant", "key"):
        pass
    assert meter.events == [("throttled_response", "log_query_rate")]


def test_a_query_that_waits_for_a_slot_is_counted_once_on_the_meter() -> None:
    meter = RecordingMeter()
    settings = LogQuerySettings(max_concurrent=1, queue_timeout_s=0.05)
    shaper = TrafficShaper(settings, meter=meter)
    with shaper.slot("tenant", "a"), pytest.raises(TooManyRequests), shaper.slot("tenant", "b"):
        pass
    assert meter.events.count(("throttle_wait", "log_query_slot")) == 1


def test_a_shaper_without_a_meter_counts_nothing_and_still_refuses() -> None:
    shaper = TrafficShaper(LogQuerySettings(rate_limit=1, rate_window_s=30))
    with shaper.slot("tenant", "key"):
        pass
    with pytest.raises(TooManyRequests), shaper.slot("tenant", "key"):
        pass
    assert shaper.refused == 1
