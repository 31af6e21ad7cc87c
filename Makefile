# Two entry points: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup demo test test-all bench report-example clean

setup: $(STAMP)

# The stamp depends on the install inputs, so editing them reinstalls.
$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps --ignore-requires-python -r requirements-nodeps.txt
	$(PIP) install -q --no-deps -e .
	$(PY) -c "import rsnn2chip, lava.lib.dl.netx; print('rsnn2chip', rsnn2chip.__version__, 'ready')"
	touch $(STAMP)

demo: setup
	$(PY) examples/demo.py --out build/demo

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Includes the tests marked slow.
test-all: setup
	$(PY) -m pytest -q -m "" $(PYTEST_ARGS)

bench: setup
	$(PY) bench/lava_vs_reference.py

clean:
	rm -rf build .pytest_cache
