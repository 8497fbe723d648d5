"""Logging set-up: one line per record, level from settings, secrets redacted on every line."""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

request_id_var: ContextVar[str | None] = ContextVar("amlcp_request_id", default=None)
"""The current request's id: on every log line, and sent to Azure as the client request id."""

# Names under which secrets travel: form fields, query parameters, JSON keys.
_SENSITIVE_NAMES = (
    "client_secret|client_assertion|assertion|secret|refresh_token|access_token|id_token"
    "|device_code|user_code|code|password|sig|signature|client_info|certificate_pem"
)

_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # JWTs (access, id and assertion tokens) wherever they appear.
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), "[REDACTED-JWT]"),
    # Authorization headers and bearer values.
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1[REDACTED]"),
    # Form and query parameters that carry secrets.
    (
        re.compile(rf"(?i)\b({_SENSITIVE_NAMES})=([^&\s\"']+)"),
        r"\1=[REDACTED]",
    ),
    # JSON (and Python repr) fields that carry secrets, whatever the value holds: msal's
    # token-cache debug line carries the device code as "code" beside "device_code".
    (
        re.compile(
            rf"(?i)([\"'](?:{_SENSITIVE_NAMES})[\"']\s*:\s*)"
            r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        if record.exc_text or record.exc_info:
            entry["exc"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(entry, default=str)


def configure_logging(level: int, *, json_lines: bool = True) -> None:
    """Configure the root logger once (idempotent: gunicorn workers and tests call it again)."""
    root = logging.getLogger()
    if not any(getattr(h, "_amlcp", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            JsonFormatter()
            if json_lines
            else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        )
        handler.addFilter(RedactingFilter())
        handler._amlcp = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    # The Azure SDK logs every HTTP request and response at INFO: two lines per log query.
    # Keep them for DEBUG runs only.
    if level > logging.DEBUG:
        logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(
            logging.WARNING
        )
