"""Helpers the views share: call context, paging, JSON responses with ETags."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, g, request

from service.api.hooks import runtime, valid
from service.domain.jsonable import jsonable
from service.services.context import CallContext
from service.services.pagination import Page, PageRequest


def call_context() -> CallContext:
    return CallContext(principal=g.principal, request_id=g.request_id)


def page_request() -> PageRequest:
    q = valid().query
    limit = min(
        int(q.get("limit", runtime().settings.page_size_default)), runtime().settings.page_size_max
    )
    return PageRequest(limit=limit, cursor=q.get("cursor"))


def if_match() -> str | None:
    return request.headers.get("If-Match")


def json_response(
    body: Any, status: int = 200, *, etag: str | None = None, location: str | None = None
) -> Response:
    response = Response(json.dumps(jsonable(body)), status=status, mimetype="application/json")
    if etag is not None:
        response.headers["ETag"] = etag
    if location is not None:
        response.headers["Location"] = location
    return response


def page_response(page: Page[Any]) -> Response:
    return json_response({"items": page.items, "next_cursor": page.next_cursor})


def no_content() -> Response:
    """204 with no body and so no Content-Type (Flask would say text/html)."""
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response
