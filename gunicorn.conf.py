"""gunicorn settings, sized for 2 cores. Every value can be overridden by GUNICORN_* / BIND."""

import os

bind = os.environ.get("BIND", "127.0.0.1:8080")
# Requests are mostly I/O (database, Azure): a few processes with threads each.
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
