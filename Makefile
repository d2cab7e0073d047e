# CertConsole: `make run` to try it, `make test` to test it. Both do all set-up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements-installed

.PHONY: run test lint format apt-deps venv bench clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

apt-deps:
	scripts/apt_install.sh apt-packages.txt

run: venv
	$(BIN)/python scripts/run.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: apt-deps venv lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: venv
	$(BIN)/python -m bench --list

clean:
	rm -rf $(VENV) var/staticfiles .pytest_cache .ruff_cache
