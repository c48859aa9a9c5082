# The gateway's two everyday commands: `make run` and `make test` (plus `make bench`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: run test lint typecheck pytest bench clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## run: install, migrate, create the admin user, import $GATEWAY_CONFIG, serve with gunicorn
run: $(VENV)/.runtime
	$(PY) -m gateway_project.bootstrap
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py ensure_admin
	@if [ -n "$$GATEWAY_CONFIG" ]; then $(PY) manage.py gateway import "$$GATEWAY_CONFIG"; fi
	exec $(BIN)/gunicorn --config gateway_project/gunicorn.conf.py gateway_project.wsgi

## test: install dev tools, lint, type-check and run the whole suite
test: $(VENV)/.dev lint typecheck pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	SECRET_KEY=typecheck $(BIN)/mypy .

pytest: $(VENV)/.dev
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/static .pytest_cache .mypy_cache .ruff_cache

## bench: gateway vs direct vs nginx proxy on loopback; writes bench/results/latest.json
bench: $(VENV)/.runtime
	@command -v nginx >/dev/null && command -v wrk >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk)
	$(PY) bench/run.py $(BENCH_ARGS)
