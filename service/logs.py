"""Logging set-up: one line per record, level from settings, secrets redacted on every line."""

from __future__ import annotations

import logging
import re
import sys

_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # JWTs (access, id and assertion tokens) wherever they appear.
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), "[REDACTED-JWT]"),
    # Authorization headers and bearer values.
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1[REDACTED]"),
    # Form and query parameters that carry secrets.
    (
        re.compile(
            r"(?i)\b(client_secret|client_assertion|refresh_token|access_token|id_token"
            r"|device_code|code|password|sig|signature)=([^&\s\"']+)"
        ),
        r"\1=[REDACTED]",
    ),
    # JSON fields that carry secrets.
    (
        re.compile(
            r"(?i)([\"'](?:client_secret|secret|refresh_token|access_token|id_token|device_code"
            r"|client_info|certificate_pem)[\"']\s*:\s*)[\"'][^\"']*[\"']"
        ),
        r'\1"[REDACTED]"',
    ),
    # Our own API keys and msal refresh tokens.
    (re.compile(r"amlcp_[A-Za-z0-9_-]{16,}"), "amlcp_[REDACTED]"),
    (re.compile(r"\b0\.A[A-Za-z0-9_-]{20,}"), "[REDACTED-RT]"),
    # PEM private keys.
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        "[REDACTED-PRIVATE-KEY]",
    ),
)


def redact(text: str) -> str:
    """Remove anything that looks like a credential from a log line."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Applied on the handler, so third-party loggers (azure, msal, urllib3) are covered too."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(level: int) -> None:
    """Configure the root logger once (idempotent: gunicorn workers and tests call it again)."""
    root = logging.getLogger()
    if not any(getattr(h, "_amlcp", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler.addFilter(RedactingFilter())
        handler._amlcp = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
