# The two commands of the README: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The stamp depends on requirements.txt: a second run installs nothing unless it changed.
STAMP := $(VENV)/.installed
# torch==2.13.0 (CPU build) may sit in a local wheel folder; pip also finds it on PyPI.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: run test manage lint format install browser clean-data

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q $(FIND_LINKS) -r requirements.txt
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@$(PY) -m searchsite.devstack run

test: $(STAMP)
	@$(PY) -m searchsite.devstack test $(ARGS)

manage: $(STAMP)
	@$(PY) -m searchsite.devstack manage $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean-data:
	rm -rf .data
