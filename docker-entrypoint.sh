#!/bin/sh
# Migrate (unless RUN_MIGRATIONS=0), then hand over to the command (gunicorn by default).
set -eu
if [ "${RUN_MIGRATIONS:-1}" = "1" ]; then
  python -m service.cli db-upgrade
fi
exec "$@"
