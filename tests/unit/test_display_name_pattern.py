"""The contract's DisplayName pattern and the service's display-name rule agree on every
character the pattern can speak of (the Basic Multilingual Plane, surrogates aside)."""

from __future__ import annotations

import re

from service.domain.text import display_name_problem
from tests.support.contract import CONTRACT


def _pattern() -> re.Pattern[str]:
    return re.compile(CONTRACT["components"]["schemas"]["DisplayName"]["pattern"])


def test_the_pattern_refuses_exactly_the_characters_the_rule_refuses_in_the_bmp() -> None:
    pattern = _pattern()
    disagree = [
        f"U+{cp:04X}"
        for cp in range(0x10000)
        if not 0xD800 <= cp <= 0xDFFF
        and (pattern.match(chr(cp)) is None) != (display_name_problem(chr(cp)) is not None)
    ]
    assert disagree == []


def test_beyond_the_pattern_the_rule_still_refuses_supplementary_format_characters() -> None:
    assert _pattern().match("a\U000e0001") is not None  # what the pattern cannot express
    assert display_name_problem("a\U000e0001") is not None  # ...the format still refuses
    assert display_name_problem("Team \U0001f680") is None  # other astral characters are fine
