"""Log redaction: secrets are removed by JSON key as well as by ``key=value`` (issue 10, item 8)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from service.logs import RedactingFilter, redact

DEVICE_CODE = "DAQABAAEAAAD--DLA3VO7QrddgJg7WevrAgAAAAAAAP8AAAAAAAAAAAAAAAAAAAAAAAAA"
AUTH_CODE = "0.AXoAbcdefghijk-lmnopQRSTUVWXYZ_0123456789abcdefAUTHCODE"


@pytest.mark.parametrize(
    "line",
    [
        # msal's token-cache debug line: the device code travels as "code" too.
        "event=" + json.dumps({"data": {"device_code": "********", "code": DEVICE_CODE}}),
        json.dumps({"grant_type": "authorization_code", "code": AUTH_CODE}),
        f"{{'code': '{AUTH_CODE}', 'client_id': 'x'}}",
        f'"code" : "{DEVICE_CODE}"',
        f"grant_type=authorization_code&code={AUTH_CODE}&redirect_uri=x",
        f"device_code={DEVICE_CODE}",
        json.dumps({"user_code": "ABCD2345", "assertion": "opaque-assertion-value"}),
    ],
)
def test_codes_are_redacted_by_json_key_and_by_form_field(line: str) -> None:
    cleaned = redact(line)
    for secret in (DEVICE_CODE, AUTH_CODE, "ABCD2345", "opaque-assertion-value"):
        assert secret not in cleaned
    assert "[REDACTED]" in cleaned


def test_a_quoted_value_with_escapes_is_redacted_whole() -> None:
    line = json.dumps({"code": 'abc"def\\ghi', "next": "kept"})
    cleaned = redact(line)
    assert "def" not in cleaned
    assert "ghi" not in cleaned
    assert '"next": "kept"' in cleaned


def test_msal_debug_lines_pass_the_filter_redacted() -> None:
    """At DEBUG, through the handler's filter, as msal's logger writes them."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("msal.token_cache.test")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("event=%s", json.dumps({"data": {"code": DEVICE_CODE}, "scope": ["a"]}))
    finally:
        logger.removeHandler(handler)
    assert DEVICE_CODE not in out.getvalue()
    assert '"scope": ["a"]' in out.getvalue()
