# The gateway's two everyday commands: `make run` and `make test` (plus `make bench`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: run test lint typecheck audit pytest bench clean

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
	@# With Redis the health checker runs beside gunicorn and stops with it; without Redis
	@# gunicorn's single worker runs the checks itself (GATEWAY_HEALTHCHECK_IN_PROCESS).
	@if [ -z "$$REDIS_URL" ]; then exec $(BIN)/gunicorn --config gateway_project/gunicorn.conf.py gateway_project.wsgi; fi; \
	$(PY) manage.py gateway healthcheck & hc=$$!; \
	$(BIN)/gunicorn --config gateway_project/gunicorn.conf.py gateway_project.wsgi & gw=$$!; \
	trap 'kill -TERM $$gw 2>/dev/null' INT TERM; \
	wait $$gw; status=$$?; if kill -0 $$gw 2>/dev/null; then wait $$gw; status=$$?; fi; \
	kill -TERM $$hc 2>/dev/null; wait $$hc; exit $$status

## test: install dev tools, lint, type-check and run the whole suite
test: $(VENV)/.dev lint typecheck audit pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	SECRET_KEY=typecheck $(BIN)/mypy .
	@# The docs' python examples, strictly, against the SDK `make sdk` generates.
	$(MAKE) --no-print-directory sdk >/dev/null
	$(PY) scripts/docs_examples.py var/docs-examples >/dev/null
	MYPYPATH=sdk $(BIN)/mypy --config-file= --strict --cache-dir=var/mypy-docs var/docs-examples

## audit: pip-audit over requirements.txt; fails on a known vulnerability with a fixed release,
## warns (and passes) when the vulnerability service cannot be reached
audit: $(VENV)/.dev
	$(PY) scripts/dependency_audit.py

pytest: $(VENV)/.dev
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/static .pytest_cache .mypy_cache .ruff_cache

## screenshots: regenerate the console screenshots in docs/screenshots (make test writes none)
.PHONY: screenshots
screenshots: $(VENV)/.dev
	GATEWAY_SCREENSHOTS=1 $(BIN)/pytest -q tests/e2e/test_console_browser.py

## bench: gateway vs direct vs nginx proxy on loopback; writes bench/results/latest.json
bench: $(VENV)/.runtime
	@command -v nginx >/dev/null && command -v wrk >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk)
	$(PY) bench/run.py $(BENCH_ARGS)

## sdk: typed Python clients (openapi-python-client) into sdk/: the gateway's API, or
## SERVICE=name for a service's API as clients reach it through the gateway.
## SDK_GATEWAY_URL=http://host:port takes the schema from that running gateway instead.
.PHONY: sdk
SDK_CONFIG := config/openapi-python-client.yaml
export SDK_FETCH := import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1], timeout=30).read())
sdk: $(VENV)/.dev
	$(PY) -m gateway_project.bootstrap
	mkdir -p sdk
ifdef SERVICE
	@if [ -n "$(SDK_GATEWAY_URL)" ]; then \
		$(PY) -c "$$SDK_FETCH" "$(SDK_GATEWAY_URL)/api/docs/services/$(SERVICE)/openapi.json" sdk/$(SERVICE)-openapi.json; \
	else \
		$(PY) manage.py gateway_docs $(SERVICE) --output sdk/$(SERVICE)-openapi.json; \
	fi
	$(BIN)/openapi-python-client generate --path sdk/$(SERVICE)-openapi.json --overwrite \
		--meta none --output-path sdk/$(subst -,_,$(SERVICE))_client --config $(SDK_CONFIG)
	@echo "Generated sdk/$(subst -,_,$(SERVICE))_client (import it with sdk/ on PYTHONPATH)."
else
	@if [ -n "$(SDK_GATEWAY_URL)" ]; then \
		$(PY) -c "$$SDK_FETCH" "$(SDK_GATEWAY_URL)/api/openapi.json" sdk/gateway-openapi.json; \
	else \
		$(PY) manage.py spectacular --format openapi-json --file sdk/gateway-openapi.json; \
	fi
	$(BIN)/openapi-python-client generate --path sdk/gateway-openapi.json --overwrite \
		--meta none --output-path sdk/gateway_client --config $(SDK_CONFIG)
	@echo "Generated sdk/gateway_client (import it with sdk/ on PYTHONPATH)."
endif
