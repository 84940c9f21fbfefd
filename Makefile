# One command each: `make run` sets up .venv and starts the server; `make test` sets up .venv and runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=
# pytest-xdist workers: one more than the 2 cores fills the time tests wait on their servers; a fourth only adds
# its own start, collection and module fixtures. worksteal: each worker takes a block of consecutive tests, and
# one that runs out takes half of the queue of the busiest, so none ends the run alone (README, Tests).
WORKERS ?= 3
XDIST := -n $(WORKERS) --dist worksteal

.PHONY: run test test-fast screenshot bench perf clean-venv

# The server's own dependencies, for `make run`; the test tools on top, for everything else.
$(VENV)/.runtime: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed: $(VENV)/.runtime
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

run: $(VENV)/.runtime
	$(PY) -m gexsrv $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# The edit-run loop: all but the tests marked slow, the slowest crash, fuzz, load and timing tests (README, Tests).
test-fast: $(VENV)/.installed
	$(PY) -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

# The README's pictures of the status page and the day view, taken by their browser tests (a plain test run keeps
# them in a temporary dir).
screenshot: $(VENV)/.installed
	GEXSRV_SCREENSHOT=$(CURDIR)/docs/status-page.png $(PY) -m pytest tests/test_status_page.py -k follows_new_ones
	GEXSRV_SCREENSHOT=$(CURDIR)/docs/day-view.png $(PY) -m pytest tests/test_day_page.py -k any_moment

bench: $(VENV)/.installed
	$(PY) -m pytest bench --benchmark-only --benchmark-enable $(PYTEST_ARGS)

# gexsrv against the baseline under load, and the history import rate (docs/performance.md); ARGS=--quick is short.
perf: $(VENV)/.installed
	$(PY) bench/report.py $(ARGS)

clean-venv:
	rm -rf $(VENV)
