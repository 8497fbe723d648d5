"""Fixtures shared by the log query tests of this folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.testing import Sandbox
from service.services import audit_queue
from service.services.runtime import Runtime
from tests.integration.log_support import Wired, wire
from tests.support.api import ApiClient, World


@pytest.fixture
def wired(
    api: ApiClient, world: World, admin_key: str, sandbox: Sandbox, runtime: Runtime
) -> Iterator[Wired]:
    """A tenant wired to this test's sandbox; the test's query audit events are written before
    the next test (a background thread writes them)."""
    yield wire(api, world, admin_key, sandbox)
    audit_queue.flush(runtime)
