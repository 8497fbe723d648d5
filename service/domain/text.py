"""Rules for caller text that the service stores or shows (pure: standard library only).

- **Storable**: every string the service may store (resources, audit events) must be valid
  Unicode that both databases accept: no lone surrogate (``"\\ud800"`` in JSON decodes to one;
  UTF-8 cannot encode it) and no NUL (PostgreSQL text and jsonb refuse it). A request carrying
  such a string is refused before anything runs, so that nothing (a log query included) happens
  without its audit record.
- **Display names** also refuse control and format characters (Unicode categories Cc and Cf:
  U+202E RIGHT-TO-LEFT OVERRIDE, zero-width spaces and joiners, U+FEFF...), which make one name
  look like another.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import Any

MAX_JSON_DEPTH = 64


def unstorable(value: str) -> str | None:
    """Why ``value`` cannot be stored, or None when it can."""
    if "\x00" in value:
        return "holds a NUL character (U+0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds an unpaired surrogate (U+{ord(value[exc.start]):04X}), which is not text"
    return None


def display_name_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable display name, or None."""
    for ch in value:
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf", "Cs"):
            return (
                f"must not hold control or format characters (U+{ord(ch):04X}, "
                f"{unicodedata.name(ch, 'unnamed')})"
            )
    return None


def document_problems(document: Any, root: str = "body") -> Iterator[tuple[str, str]]:
    """(field, message) for every unstorable key or string in a parsed JSON document, and for
    nesting deeper than :data:`MAX_JSON_DEPTH` (walked without recursion)."""
    stack: list[tuple[Any, str, int]] = [(document, root, 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, str):
            reason = unstorable(value)
            if reason is not None:
                yield where, reason
        elif isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                yield where, f"nested deeper than {MAX_JSON_DEPTH} levels"
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and (reason := unstorable(key)) is not None:
                    yield where, f"a property name {reason}"
                    continue
                stack.append((item, f"{where}.{key}", depth + 1))
