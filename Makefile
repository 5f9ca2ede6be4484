# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format check-deploy clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## Start everything (web, worker, beat, outbox) on the embedded default; Ctrl-C stops it all.
run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py ensure_operator
	$(BIN)/python manage.py run_stack

## Run the whole suite (on Postgres and Redis when DATABASE_URL and REDIS_URL are set).
# DEBUG=true: the suite runs on the test client's plain HTTP; production settings are
# tested in subprocesses of their own. var/test keeps the suite away from `make run`'s data.
test: $(STAMP)
	DEBUG=$${DEBUG:-true} MAILPANEL_VAR_DIR=$(CURDIR)/var/test $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var
