# The two set-up commands: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test venv bytecode lint pytest migrate worker demo bench clean jsdeps lock azurite

# The official JavaScript Log Analytics client, pinned by tests/js_client/package-lock.json, for
# tests/integration/test_js_client.py (needs node and npm; `npm ci` reads only the lockfile).
JS_DIR   := tests/js_client
JS_STAMP := $(JS_DIR)/node_modules/.installed-stamp

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# (the filter drops pip's noise about this machine's unused local index folders)
	bash -o pipefail -c "$(BIN)/pip install -q -r requirements.lock 2>&1 | { grep -v 'is ignored: it is neither' || true; }"
	# The project runs from this checkout: put it on the venv's path instead of building a wheel.
	$(BIN)/python -c "import sysconfig; open(sysconfig.get_paths()['purelib'] + '/amlcp-checkout.pth', 'w').write('$(CURDIR)\\n')"
	$(BIN)/pip check
	touch $(STAMP)

venv: $(STAMP)

$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

jsdeps: $(JS_STAMP)

# Azurite (Microsoft's storage emulator, npm): where data export rules deliver in tests and the
# demo. Pinned by tools/azurite/package-lock.json; without npm its tests skip and say why.
AZURITE_STAMP := tools/azurite/node_modules/.installed-stamp
$(AZURITE_STAMP): tools/azurite/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tools/azurite && npm ci --no-audit --no-fund --loglevel=error \
			&& touch node_modules/.installed-stamp; \
	else echo "npm not found: the Azurite (data export delivery) tests will be skipped"; fi

azurite: $(AZURITE_STAMP)

# The service's bytecode, compiled once: a shell with PYTHONDONTWRITEBYTECODE=1 (as this
# machine's and the image's) would make every gunicorn worker compile it again at each start.
# Likewise the parsed contract (__pycache__/openapi.yaml.<sha256>.json), which each worker
# would otherwise parse from YAML.
bytecode: venv
	$(BIN)/python -m compileall -q service
	$(BIN)/python -m service.api.openapi openapi.yaml

## make run: migrate the embedded SQLite database under var/ and serve on 127.0.0.1:8080
run: bytecode
	mkdir -p var
	$(BIN)/python -m service.cli db-upgrade
	@# One reconciler beside the API (started by gunicorn's when_ready hook, not per worker).
	RUN_RECONCILER=1 $(BIN)/gunicorn --config gunicorn.conf.py wsgi:app

migrate: venv
	$(BIN)/python -m service.cli db-upgrade

## make worker: the reconciler alone (production: one or more per PostgreSQL database)
worker: venv
	$(BIN)/python -m service.worker

## make test: quality gates, then the whole suite (SQLite, and PostgreSQL when reachable)
test: venv lint pytest

lint: venv
	$(BIN)/ruff check service emulator demo tests bench migrations scripts wsgi.py gunicorn.conf.py
	$(BIN)/ruff format --check service emulator demo tests bench migrations scripts wsgi.py gunicorn.conf.py
	$(BIN)/mypy service
	$(BIN)/lint-imports
	$(BIN)/pip check
	@# alembic check: the models and the migrations describe the same schema.
	mkdir -p var && rm -f var/alembic-check.db
	DATABASE_URL=sqlite:///var/alembic-check.db $(BIN)/alembic upgrade head >/dev/null 2>&1
	DATABASE_URL=sqlite:///var/alembic-check.db $(BIN)/alembic check
	rm -f var/alembic-check.db

pytest: venv jsdeps azurite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make demo: the emulator with a seeded fleet + the service against it (HTTPS), and a walkthrough
DEMO_PORT ?= 8443
DEMO_EMULATOR_PORT ?= 9443
DEMO_DIR ?= var/demo
demo: venv azurite
	$(BIN)/python -m demo --port $(DEMO_PORT) --emulator-port $(DEMO_EMULATOR_PORT) --dir $(DEMO_DIR)

## make lock: regenerate requirements.lock (pins + hashes) from requirements.in in one resolution
lock: venv
	$(BIN)/python scripts/lock.py $(if $(UPGRADE),--upgrade)

## make bench: every benchmark in turn (bench/__main__.py), each run appended to
## var/bench/results.jsonl; BENCH="readiness sdk_import" (names and their options) selects
bench: bytecode
	$(BIN)/python -m bench $(BENCH)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache $(JS_DIR)/node_modules tools/azurite/node_modules
