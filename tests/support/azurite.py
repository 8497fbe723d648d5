"""A session-wide Azurite blob service for the tests that read exported data back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.azurite import Azurite, start_azurite, unavailable_reason


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """azurite-blob on a free port; skipped (with the reason) where it cannot run."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"Azurite unavailable: {reason}")
    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        server.stop()
