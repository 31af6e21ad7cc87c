# Two entry points: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup setup-browser demo test test-all bench report-example clean

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

# The HTML report test renders the page in headless Chromium (Debian package `chromium`). Installed only
# when missing and apt-get exists; a failed install (no root, no network) warns and the test skips itself.
setup-browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the HTML report test"; \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium) \
			|| echo "warning: could not install chromium; the HTML rendering test will be skipped"; \
	else echo "warning: no /usr/bin/chromium and no apt-get; the HTML rendering test will be skipped"; fi

test: setup setup-browser
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Includes the tests marked slow.
test-all: setup setup-browser
	$(PY) -m pytest -q -m "" $(PYTEST_ARGS)

bench: setup
	$(PY) bench/sim_speed.py

# Regenerates the committed example report of the demo network (HTML with inlined PNGs, plus the PNGs).
REPORT_EXAMPLE := docs/examples/demo-report
report-example: setup
	test -f build/demo/net.r2c -a -e build/demo/activity || $(MAKE) demo
	$(PY) -m rsnn2chip report build/demo/net.r2c --activity build/demo/activity --format html \
		--image-formats png -o $(REPORT_EXAMPLE)

clean:
	rm -rf build .pytest_cache
