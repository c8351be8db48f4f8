# dvcbot — every way people and CI run things. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
RASA_VENV := .venv-rasa
PY := $(VENV)/bin/python
RASA_PY := $(RASA_VENV)/bin/python
DVCBOT := $(VENV)/bin/dvcbot
export RASA_TELEMETRY_ENABLED := false

.PHONY: help setup run test test-fast test-stories lint eval-nlu model content browser clean \
	check train eval deploy rollback run-prod bench-tools bench faults migration

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

# --- virtualenvs: rebuilt only when their lock files change -------------------------------------------
$(VENV)/.installed: requirements/project.lock pyproject.toml
	@py=$$(scripts/find-python.sh 3.11+) || exit 1; \
	  [ -x $(PY) ] || { echo "Creating $(VENV) with $$py"; $$py -m venv $(VENV); }
	$(PY) -m pip install -q --disable-pip-version-check -r requirements/project.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

$(RASA_VENV)/.installed: requirements/rasa.lock
	@py=$$(scripts/find-python.sh 3.10) || exit 1; \
	  [ -x $(RASA_PY) ] || { echo "Creating $(RASA_VENV) with $$py (Rasa 3.6 needs Python 3.10)"; $$py -m venv $(RASA_VENV); }
	$(RASA_PY) -m pip install -q --disable-pip-version-check -r requirements/rasa.lock
	@touch $@

setup: $(VENV)/.installed $(RASA_VENV)/.installed ## create/update both virtualenvs (only when their locks changed)

content: setup ## check the catalog and load it into the database
	$(DVCBOT) catalog check
	$(DVCBOT) db init
	$(DVCBOT) catalog load
	$(DVCBOT) dossiers import data/dossiers/demo_register.csv

model: setup ## train the Rasa model if config.yml, the domain or data/ changed
	$(DVCBOT) train

run: content model ## set everything up and start Rasa, the action server and the gateway (web chat on :8000)
	$(DVCBOT) run --no-train

migration: setup ## developers: write a migration for the models' changes, MSG="what changes" (README, Database schema)
	@[ -n "$(MSG)" ] || { echo 'usage: make migration MSG="tickets: priority column"'; exit 2; }
	$(DVCBOT) db revision -m "$(MSG)"

# --- content editors: check, train, evaluate, deploy, roll back (docs/editors.md) ---------------------------
check: setup ## check the content: rasa data validate, catalog, cross-checks; errors as file:line: message
	$(DVCBOT) content check

train: setup ## train the Rasa model if its inputs changed (shows progress; earlier models are kept)
	$(DVCBOT) train

eval: setup ## the newest model against the live one on the held-out data, per intent
	$(DVCBOT) eval

deploy: setup ## load the newest model (or MODEL=...) into the running bot; refused if worse, unless FORCE=1
	$(DVCBOT) deploy $(if $(FORCE),--force) $(MODEL)

rollback: setup ## bring back the model that was live before the last deploy
	$(DVCBOT) rollback

# --- production profile, benchmarks, faults (docs/deploy.md) -------------------------------------------------
PROD_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/dvcbot_prod
PROD_REDIS_URL ?= redis://127.0.0.1:6379/0
REPLICAS ?= 2

run-prod: setup model ## production profile: 2 gateways, 2 Rasa, 2 action servers on PostgreSQL + Redis behind HAProxy (:8000)
	@scripts/install-haproxy.sh
	DVCBOT_DATABASE_URL=$${DVCBOT_DATABASE_URL:-$(PROD_DATABASE_URL)} DVCBOT_REDIS_URL=$${DVCBOT_REDIS_URL:-$(PROD_REDIS_URL)} \
	  $(DVCBOT) run-prod --no-train --replicas $(REPLICAS)

bench-tools: setup
	@scripts/install-haproxy.sh
	@$(PY) -m pip install -q --disable-pip-version-check py-spy==0.4.3

bench: bench-tools model ## load benchmark of the real stack, 1 and 2 replicas, web chat + Telegram -> reports/bench.md (~15 min)
	$(PY) -m bench $(BENCH_ARGS)

faults: bench-tools model ## kill -9, PostgreSQL restart, Redis pause, Telegram 429/500 under load -> reports/faults.md
	$(PY) -m bench.faults $(FAULTS_ARGS)

# --- checks -----------------------------------------------------------------------------------------------
lint: setup ## ruff and mypy
	$(VENV)/bin/ruff check dvcbot bot actions tests bench
	$(VENV)/bin/ruff check --target-version py310 nlu
	$(VENV)/bin/mypy -p dvcbot -p bot -p actions -p bench

eval-nlu: setup ## train on data/nlu, evaluate on the held-out set + 5-fold cross-validation -> reports/nlu.md
	$(RASA_PY) -m nlu.evaluate --folds 5

browser:
	@scripts/install-browser.sh

test: setup model browser ## the whole suite: unit, PostgreSQL/Redis, end-to-end with the real Rasa model, browser
	$(DVCBOT) content check
	$(PY) -m pytest -q -p no:cacheprovider --ignore=tests/rasa tests
	$(RASA_PY) -m pytest -q -p no:cacheprovider tests/nlu tests/rasa
	$(MAKE) --no-print-directory test-stories

test-stories: model ## conversation tests (tests/test_stories.yml) against the trained model with `rasa test`
	@model=$$($(PY) -c 'from dvcbot.training import current_model; print(current_model())'); \
	  $(RASA_VENV)/bin/rasa test core --stories tests/test_stories.yml --model "$$model" \
	    --fail-on-prediction-errors --out var/rasa-test > var/rasa-test.log 2>&1 \
	  || { grep -v -i warn var/rasa-test.log | tail -30; echo "rasa test failed (full log: var/rasa-test.log)"; exit 1; }; \
	  echo "rasa test: every story in tests/test_stories.yml passed"

test-fast: setup ## unit tests only (no Rasa, no browser)
	$(PY) -m pytest -q -m "not e2e and not browser" --ignore=tests/rasa tests

clean: ## remove virtualenvs, models and local data
	rm -rf $(VENV) $(RASA_VENV) models var reports/*.png
