"""Every string a request may carry is one the contract declares storable text.

The service refuses a NUL character (and unpaired surrogates) in any path or query parameter
and in any string of a JSON body, with a 400 (``service.domain.text.unstorable``), before
anything runs. A request-side string the contract left unconstrained therefore made a
schema-valid request that the service rightly refuses: the contract fuzzing
(``tests/e2e/test_contract_fuzz.py``) found one once it generated a NUL for the traces'
``contains``. So each such string must declare an ``enum`` or a ``pattern`` that refuses a NUL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from service.api.openapi import whole_value_pattern
from tests.support.contract import CONTRACT, METHODS, resolve


def _strings(schema: Any, where: str, seen: set[int]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, schema) of every string a value of ``schema`` may hold, through refs, objects,
    arrays and combinators."""
    schema = resolve(schema)
    if not isinstance(schema, dict) or id(schema) in seen:
        return
    seen = seen | {id(schema)}
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    if "string" in types:
        yield where, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from _strings(sub, f"{where}.{name}", seen)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        yield from _strings(extra, f"{where}.*", seen)
    if "items" in schema:
        yield from _strings(schema["items"], f"{where}[]", seen)
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(key) or []):
            yield from _strings(sub, f"{where}<{key}{i}>", seen)


def _request_strings() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in CONTRACT["paths"].items():
        shared = item.get("parameters") or []
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            at = f"{method.upper()} {path}"
            for param in [*shared, *(op.get("parameters") or [])]:
                param = resolve(param)
                if param["in"] in ("path", "query"):
                    where = f"{at} {param['in']}.{param['name']}"
                    yield from _strings(param["schema"], where, set())
            body = resolve(op.get("requestBody") or {})
            for media, content in (body.get("content") or {}).items():
                if "json" in media:
                    yield from _strings(content.get("schema"), f"{at} body", set())


# Formats whose values cannot hold a NUL (the fuzzer generates values of the format).
_TEXTLESS_FORMATS = {"date-time", "date", "uuid", "display-name"}


def _refuses_nul(schema: dict[str, Any]) -> bool:
    if schema.get("format") in _TEXTLESS_FORMATS:
        return True
    if "enum" in schema or "const" in schema:
        return all("\x00" not in str(v) for v in schema.get("enum", [schema.get("const")]))
    pattern = schema.get("pattern")
    return pattern is not None and re.search(whole_value_pattern(pattern), "a\x00b") is None


def test_every_request_string_declares_that_it_holds_no_nul() -> None:
    strings = list(_request_strings())
    assert len(strings) > 20  # the walk reaches the request bodies' strings
    unconstrained = sorted({where for where, schema in strings if not _refuses_nul(schema)})
    assert unconstrained == []
