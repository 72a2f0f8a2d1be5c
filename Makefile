# Two commands on a fresh machine:  `make demo` (set up + train on the bundled digits), `make test`.
# `make test-quick` leaves out the tests marked slow (whole runs, kill/resume, real-command catalogues).
# Both spread the test files over the cores (pytest-xdist; one file per worker, so a module's shared
# fixture is built once), files with slow tests first (tests/conftest.py orders them; xdist's own
# reordering, by number of tests, would start the longest files last).
# `make lint`: ruff's lint and format check (pyproject.toml), as CI runs it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-quick lint install clean

$(STAMP): requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) train.py

test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

test-quick: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile --no-loadscope-reorder -m "not slow"

# Lint and format check (settings: pyproject.toml); CI runs it before the tests.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) checkpoints .pytest_cache
