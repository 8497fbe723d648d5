"""Cursors are opaque, round-trip exactly, and anything else is a 400 (never a database error)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from service.errors import ValidationFailed
from service.services.pagination import decode_cursor, encode_cursor


@pytest.mark.parametrize(
    ("key", "kind"), [("01a2b3c4-0000-7000-8000-000000000000", str), (0, int), (2**63 - 1, int)]
)
def test_a_cursor_round_trips_and_is_url_safe(key: str | int, kind: type[Any]) -> None:
    cursor = encode_cursor(key)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(cursor, kind) == key


def _raw(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": value}).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("cursor", "kind"),
    [
        ("", str),
        ("!!!", str),
        ("e30", str),  # {}
        (_raw(1), str),
        (_raw("x"), int),
        (_raw(True), int),
        (_raw(2**63), int),
        (_raw(-(2**63) - 1), int),
        (_raw(1.0), int),
        (_raw("\x00"), str),
        (_raw("\ud800"), str),
        (_raw("x" * 65), str),
        (_raw(None), str),
        (base64.urlsafe_b64encode(b"[1]").decode(), str),
    ],
)
def test_anything_else_is_a_validation_error(cursor: str, kind: type[Any]) -> None:
    with pytest.raises(ValidationFailed) as raised:
        decode_cursor(cursor, kind)
    assert raised.value.status == 400
