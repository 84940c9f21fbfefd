# One command each: `make run` sets up .venv and starts the server; `make test` sets up .venv and runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test bench perf clean-venv

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(PY) -m gexsrv $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) -m pytest bench --benchmark-only --benchmark-enable $(PYTEST_ARGS)

# gexsrv against the baseline under load, and the history import rate (docs/performance.md); ARGS=--quick is short.
perf: $(VENV)/.installed
	$(PY) bench/report.py $(ARGS)

clean-venv:
	rm -rf $(VENV)
