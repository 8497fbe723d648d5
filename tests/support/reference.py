"""The reference copy of Azure's specs and recordings, beside the project in ../shared/reference.

Tests that hold the emulator to Azure's own documents read them there. Without the folder they
skip and say so; ``REQUIRE_REFERENCE=1`` (CI, where the folder is present) turns the skip into a
failure, so the fidelity tests cannot go quietly missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.config import PROJECT_ROOT

REFERENCE = PROJECT_ROOT.parent / "shared" / "reference" / "azure"
REFERENCE_REQUIRED = os.environ.get("REQUIRE_REFERENCE") == "1"


def reference(relative: str) -> Path:
    """A file or folder of the reference copy (not checked: call `require` before reading)."""
    return REFERENCE / relative


def require(path: Path) -> Path:
    """`path` when it exists; else skip the test saying what is missing (fail on CI)."""
    if path.exists():
        return path
    reason = f"the reference copy of Azure's documents is absent: {path} is missing"
    if REFERENCE_REQUIRED:
        pytest.fail(f"REQUIRE_REFERENCE=1 but {reason}")
    pytest.skip(f"{reason} (../shared/reference/azure, see its SOURCES.md)")
