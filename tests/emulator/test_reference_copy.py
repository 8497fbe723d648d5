"""Fidelity tests that read ../shared/reference skip with a reason without it, fail on CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import reference
from tests.support.reference import require


def test_a_missing_reference_file_skips_the_test_and_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reference, "REFERENCE_REQUIRED", False)  # as without REQUIRE_REFERENCE
    missing = tmp_path / "OperationalInsights.json"
    with pytest.raises(pytest.skip.Exception, match=r"absent: .*OperationalInsights\.json"):
        require(missing)


def test_with_require_reference_a_missing_file_fails_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reference, "REFERENCE_REQUIRED", True)
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_REFERENCE=1"):
        require(tmp_path / "modelManagement.json")


def test_a_present_reference_file_is_returned(tmp_path: Path) -> None:
    present = tmp_path / "recordings"
    present.mkdir()
    assert require(present) == present
