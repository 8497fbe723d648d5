"""The one reader of JSON request bodies and the one check of caller text, for every route.

Typed routes (through the contract validator) and the Log Analytics-compatible routes read
bodies here, so malformed, too deeply nested or unstorable input (``service.domain.text``) is
refused the same way everywhere: ``ValidationFailed`` (400), which the edge renders as
problem+json, or in Azure's error shape under ``/loganalytics``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from service.domain.text import document_problems, unstorable
from service.errors import ValidationFailed


def parse_json(raw: bytes, field: str = "body") -> Any:
    """Parse a UTF-8 JSON body; raise ValidationFailed naming what is wrong with it."""
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        _fail([(field, "malformed JSON: nested too deeply")])
    except UnicodeDecodeError:
        _fail([(field, "malformed JSON: the body is not valid UTF-8 text")])
    except json.JSONDecodeError as exc:
        _fail([(field, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")])
    except ValueError as exc:
        _fail([(field, f"malformed JSON: {exc}")])
    problems = list(document_problems(document, field))
    if problems:
        _fail(problems)
    return document


def check_text(values: Iterable[tuple[str, str]]) -> None:
    """Refuse unstorable text in (field, value) pairs: path and query parameters."""
    problems = [(f, r) for f, v in values if (r := unstorable(v)) is not None]
    if problems:
        _fail(problems)


def request_text(
    path_args: Mapping[str, Any], query: Mapping[str, list[str]]
) -> list[tuple[str, str]]:
    """The (field, value) pairs of a request's path and query parameters."""
    pairs = [(f"path.{k}", str(v)) for k, v in path_args.items()]
    for name, values in query.items():
        pairs.append(("query", name))
        pairs.extend((f"query.{name}", v) for v in values)
    return pairs


def _fail(problems: list[tuple[str, str]]) -> Any:
    errors = [{"field": f, "message": m} for f, m in problems]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise ValidationFailed(f"{errors[0]['field']}: {errors[0]['message']}{more}", errors)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
