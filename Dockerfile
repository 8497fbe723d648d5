# AML monitoring control plane: API image (the reconciler runs from the same image with
# `python -m service.worker`). Build: docker build -t amlcp .
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

# Dependencies first, so code changes do not reinstall them. psycopg[binary] and cryptography
# ship wheels: no compiler needed.
COPY requirements.lock ./
RUN pip install -r requirements.lock

COPY alembic.ini gunicorn.conf.py wsgi.py openapi.yaml pyproject.toml ./
COPY migrations ./migrations
COPY service ./service
COPY docker-entrypoint.sh ./

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin amlcp \
    && mkdir -p /app/var && chown amlcp /app/var
USER amlcp

ENV BIND=0.0.0.0:8080 \
    HOME=/app/var
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]

# Migrations are an explicit step before the server starts (the app refuses a schema that is
# not at head). Set RUN_MIGRATIONS=0 when a separate job migrates.
ENTRYPOINT ["./docker-entrypoint.sh"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"]
