"""Logging set-up: one line per record, level from settings."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: int) -> None:
    """Configure the root logger once (idempotent: gunicorn workers and tests call it again)."""
    root = logging.getLogger()
    if not any(getattr(h, "_amlcp", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler._amlcp = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
