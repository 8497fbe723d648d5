"""A ``service.services.meter.Meter`` that records what the use cases counted."""

from __future__ import annotations


class RecordingMeter:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def throttle_wait(self, budget: str) -> None:
        self.events.append(("throttle_wait", budget))

    def throttled_response(self, reason: str) -> None:
        self.events.append(("throttled_response", reason))

    def log_query(self, tenant_id: str, outcome: str) -> None:
        self.events.append(("log_query", outcome))

    def log_query_cache(self, result: str) -> None:
        self.events.append(("log_query_cache", result))

    def write_slot_missed(self, reason: str) -> None:
        self.events.append(("write_slot_missed", reason))
