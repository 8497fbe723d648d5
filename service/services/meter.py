"""What the use cases count, as a port: the composition roots plug Prometheus in.

``service.services`` does not import Prometheus (an import-linter contract says so): the
runtime carries a :class:`Meter`, ``service.metrics.PrometheusMeter`` in the processes that
``service.bootstrap.build_runtime`` wires, :class:`NoMeter` where nothing is exported.
"""

from __future__ import annotations

from typing import Protocol


class Meter(Protocol):
    def throttle_wait(self, budget: str) -> None:
        """Work waited for a rate or concurrency budget (``subscription_writes``, ...)."""

    def throttled_response(self, reason: str) -> None:
        """The service answered a caller 429 for ``reason``."""

    def log_query(self, tenant_id: str, outcome: str) -> None:
        """A log query ended (``success``, ``partial`` or the error code)."""

    def log_query_cache(self, result: str) -> None:
        """Where a log query's answer came from (``azure``, ``coalesced``, ``cache``)."""

    def write_slot_missed(self, reason: str) -> None:
        """A write gave up its subscription write slot and took another: ``late`` (the
        reconciler was too loaded to send it in time), ``read_failed`` / ``read_slow`` (the
        read before it failed, or ended after the slot)."""


class NoMeter:
    """Counts nothing (runtimes built without a composition root: unit tests, tools)."""

    def throttle_wait(self, budget: str) -> None:
        pass

    def throttled_response(self, reason: str) -> None:
        pass

    def log_query(self, tenant_id: str, outcome: str) -> None:
        pass

    def log_query_cache(self, result: str) -> None:
        pass

    def write_slot_missed(self, reason: str) -> None:
        pass
