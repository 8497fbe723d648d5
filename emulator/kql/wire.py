"""Serialise result tables into the Log Analytics JSON wire shape.

Rules the SDK and the service agree on: ``datetime`` is ISO 8601 with a ``Z``; ``timespan`` is
``[d.]hh:mm:ss[.fffffff]``; ``dynamic`` is a JSON string (a string value as itself); ``real``
NaN and infinities are the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; ``long``/``int``
are JSON numbers; ``bool`` is true/false; ``guid`` is its text; null is null.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from .model import Table
from .values import dynamic_text, format_datetime, format_timespan

Converter = Callable[[Any], Any]


def _datetime(value: Any) -> Any:
    return format_datetime(value) if isinstance(value, datetime) else value


def _timespan(value: Any) -> Any:
    return format_timespan(value) if isinstance(value, timedelta) else value


def _dynamic(value: Any) -> Any:
    return None if value is None else dynamic_text(value)


def _real(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return "NaN"
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _integer(value: Any) -> Any:
    # bools are ints in Python; a long column never carries true/false on the wire
    return int(value) if isinstance(value, bool) else value


_CONVERTERS: dict[str, Converter] = {
    "datetime": _datetime,
    "timespan": _timespan,
    "dynamic": _dynamic,
    "real": _real,
    "decimal": _real,
    "long": _integer,
    "int": _integer,
}


def table_to_wire(table: Table) -> dict[str, Any]:
    """``{"name", "columns": [{"name", "type"}], "rows": [[...]]}`` ready for ``json.dumps``."""
    columns = [{"name": c.name, "type": c.type} for c in table.columns]
    converters = [
        (i, _CONVERTERS[c.type]) for i, c in enumerate(table.columns) if c.type in _CONVERTERS
    ]
    if not converters:
        rows = [list(row) for row in table.rows]
    else:
        rows = []
        for row in table.rows:
            out = list(row)
            for index, convert in converters:
                value = out[index]
                if value is not None:
                    out[index] = convert(value)
            rows.append(out)
    return {"name": table.name, "columns": columns, "rows": rows}
