"""``Urllib3Response.text()`` decodes as azure-core's own responses do: the caller's encoding,
else the answer's charset, else UTF-8 with a byte-order mark dropped (ARM's deserializers
read ``text()``; 8b72470 moved the v2 ARM client onto this transport)."""

from __future__ import annotations

import io

import pytest
import urllib3
from azure.core.rest import HttpRequest

from service.adapters.http_transport import Urllib3Response


def _answer(body: bytes, content_type: str | None) -> Urllib3Response:
    headers = {"Content-Type": content_type} if content_type else {}
    raw = urllib3.HTTPResponse(
        body=io.BytesIO(body), headers=headers, status=200, preload_content=False
    )
    response = Urllib3Response(HttpRequest("GET", "https://example.test/"), raw, 4)
    response.read()
    return response


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"name": "bleu"}', "application/json", '{"name": "bleu"}'),
        (b'\xef\xbb\xbf{"a": 1}', "application/json", '{"a": 1}'),  # UTF-8 BOM dropped
        ("caf\u00e9".encode("latin-1"), "text/plain; charset=ISO-8859-1", "caf\u00e9"),
        ("caf\u00e9".encode("latin-1"), 'text/plain; charset="iso-8859-1"', "caf\u00e9"),
        ("\u00e9".encode(), None, "\u00e9"),
    ],
)
def test_text_uses_the_answers_charset_else_utf8_without_its_bom(
    body: bytes, content_type: str | None, expected: str
) -> None:
    assert _answer(body, content_type).text() == expected


def test_text_prefers_the_callers_encoding_then_the_one_set_on_the_response() -> None:
    answer = _answer("caf\u00e9".encode("latin-1"), "text/plain; charset=utf-8")
    assert answer.text("latin-1") == "caf\u00e9"
    answer.encoding = "latin-1"
    assert answer.text() == "caf\u00e9"
