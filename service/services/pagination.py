"""Keyset pagination with opaque cursors."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Integer, Select, bindparam
from sqlalchemy.orm import InstrumentedAttribute, Session

from service.errors import ValidationFailed

_STR_KEY = re.compile(r"[A-Za-z0-9._:-]{1,64}")
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class PageRequest:
    limit: int
    cursor: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(key: str | int) -> str:
    raw = json.dumps({"k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, expected: type[str] | type[int]) -> Any:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        key = data["k"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        key = None
    if type(key) is not expected or not _key_in_range(key):
        raise ValidationFailed(
            "invalid cursor", [{"field": "cursor", "message": "not a cursor this API issued"}]
        )
    return key


def _key_in_range(key: Any) -> bool:
    """Keys are BIGINT ids or short ASCII ids: anything else would break the query, not page it."""
    if isinstance(key, int):
        return -(2**63) <= key < 2**63
    return isinstance(key, str) and _STR_KEY.fullmatch(key) is not None


def paginate(
    session: Session,
    stmt: Select[R],
    key: InstrumentedAttribute[Any],
    page: PageRequest,
    *,
    key_type: type[str] | type[int] = str,
    descending: bool = False,
) -> tuple[Sequence[Any], str | None]:
    """Run ``stmt`` ordered by the unique ``key``, resuming after the cursor.

    ``stmt`` selects one entity (the rows are its objects) or several columns (the rows are
    ``Row`` tuples with the columns as attributes). Returns the rows and the cursor of the next
    page (None on the last page).
    """
    params = page_params(page, key_type)
    stmt = keyset(stmt, key, after=page.cursor is not None, descending=descending)
    rows: Sequence[Any]
    if len(stmt.column_descriptions) == 1:
        rows = session.scalars(stmt, params).all()
    else:
        rows = session.execute(stmt, params).all()  # Row tuples: typed as R by the caller's Select
    return cut_page(rows, page, key.key)


def keyset(
    stmt: Select[R], key: InstrumentedAttribute[Any], *, after: bool, descending: bool = False
) -> Select[R]:
    """``stmt`` as a keyset page ordered by the unique ``key``, with the cursor's key (when
    ``after``) and the limit as bound parameters (``page_params``): a hot list can build it once."""
    if after:
        stmt = stmt.where(key < bindparam("after") if descending else key > bindparam("after"))
    order = key.desc() if descending else key.asc()
    return stmt.order_by(order).limit(bindparam("limit", type_=Integer))


def page_params(page: PageRequest, key_type: type[str] | type[int] = str) -> dict[str, Any]:
    """The bound parameters of a ``keyset`` statement for ``page``: one row more than the limit
    (it tells whether a next page exists), and the cursor's key."""
    params: dict[str, Any] = {"limit": page.limit + 1}
    if page.cursor is not None:
        params["after"] = decode_cursor(page.cursor, key_type)
    return params


def cut_page(rows: Sequence[T], page: PageRequest, key_name: str) -> tuple[Sequence[T], str | None]:
    """The page's rows and the cursor of the next page (None on the last page)."""
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        return rows, encode_cursor(getattr(rows[-1], key_name))
    return rows, None
