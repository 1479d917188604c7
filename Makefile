# Gatehouse developer commands. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# requirements/prod.txt alone, as docker/Dockerfile installs it: what only dev.txt brings in is missing here.
PROD_VENV ?= var/prod-venv
PROD_BIN := $(PROD_VENV)/bin

.PHONY: help install run test smoke smoke-prod fuzz schema lint format soak chaos

help:  ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements/base.txt requirements/dev.txt requirements/prod.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/dev.txt -r requirements/prod.txt
	touch $@

install: $(BIN)/.installed  ## Create .venv and install the pinned requirements

run: install  ## Set up (migrate) and run the service on its embedded defaults: API on :8000, worker, beat
	PATH="$(CURDIR)/$(BIN):$$PATH" ./scripts/dev

test: install  ## Run the test suite (uses DATABASE_URL / REDIS_URL when set)
	$(BIN)/pytest

smoke: install  ## End-to-end smoke of the production topology (needs PostgreSQL, Redis, Chromium)
	$(BIN)/python scripts/smoke

$(PROD_BIN)/.installed: requirements/base.txt requirements/prod.txt
	$(PYTHON) -m venv --clear $(PROD_VENV)
	$(PROD_BIN)/pip install --quiet -r requirements/prod.txt
	touch $@

smoke-prod: $(PROD_BIN)/.installed  ## The smoke in a venv of requirements/prod.txt alone (var/prod-venv), after pip check
	$(PROD_BIN)/pip check
	SMOKE_VENV=$(PROD_VENV) $(PROD_BIN)/python scripts/smoke

fuzz: install  ## schemathesis against a started server, JWT and API key, every check (needs PostgreSQL, Redis)
	$(BIN)/python scripts/fuzz

soak: install  ## 10-minute soak at 80% of peak: bench/results/soak-*.json and .png (PostgreSQL, Redis, Chromium)
	$(BIN)/python bench/soak.py

chaos: install  ## Kill and restart the worker, PostgreSQL, Redis, a web worker under load (private PostgreSQL/Redis)
	$(BIN)/python bench/chaos.py

schema: install  ## Regenerate docs/openapi.yaml from the code (commit it with the change of contract)
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file docs/openapi.yaml

lint: install  ## ruff check, format check and the import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: install  ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
