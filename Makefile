# Freehold quickstart targets. See README.md.
VENV ?= .venv
export VENV

.PHONY: up test setup lint
up: setup          ## stand the platform up on the local lab
	$(VENV)/bin/freehold up

test: setup        ## run the whole test suite (unit, integration, lab)
	bash scripts/run-tests.sh

setup:             ## install Debian packages (as root) and the Python environment
	bash scripts/install-deps.sh

lint: setup
	$(VENV)/bin/ruff check .
