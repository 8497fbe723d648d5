# AML monitoring control plane: API image (the reconciler runs from the same image with
# `python -m service.worker`). Build: docker build -t amlcp .
# The base image is pinned by digest (python:3.11-slim-bookworm): a rebuild gets the same bytes.
# Move it on purpose: `docker buildx imagetools inspect python:3.11-slim-bookworm`.
FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

# Dependencies first, so code changes do not reinstall them. psycopg[binary] and cryptography
# ship wheels: no compiler needed. requirements.lock pins every distribution with its sha256
# (scripts/lock.py): pip refuses any file whose hash differs, and anything not in the lock.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock && pip check

COPY alembic.ini gunicorn.conf.py wsgi.py openapi.yaml pyproject.toml ./
COPY migrations ./migrations
COPY service ./service
COPY docker-entrypoint.sh ./
# Bytecode compiled once here (PYTHONDONTWRITEBYTECODE keeps workers from writing it): without it
# every worker compiles the service's modules at each start, ~60 ms of its boot (issue 16). The
# same for the parsed contract (__pycache__/openapi.yaml.<sha256>.json, ~0.1 s of each boot):
# the workers run as amlcp and cannot write it beside the contract.
RUN python -m compileall -q service migrations && python -m service.api.openapi openapi.yaml

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin amlcp \
    && mkdir -p /app/var && chown amlcp /app/var
USER amlcp

ENV BIND=0.0.0.0:8080 \
    HOME=/app/var
EXPOSE 8080

# Asks /healthz where gunicorn listens, read from BIND (so a changed BIND keeps it working).
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-m", "service.healthcheck"]

# Migrations are an explicit step before the server starts (the app refuses a schema that is
# not at head). Set RUN_MIGRATIONS=0 when a separate job migrates.
ENTRYPOINT ["./docker-entrypoint.sh"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"]
