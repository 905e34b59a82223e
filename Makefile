# The two commands: `make run` and `make test`.  Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# Debian packages the tests need; installed by scripts/system-deps.sh when run as root.
# One package per line, so branches that add one merge cleanly.
TEST_DEBS := \
	asterisk-core-sounds-en-wav \
	asterisk-moh-opsound-wav \
	chromium \
	# end of TEST_DEBS

.PHONY: run test lint typecheck lock clean bench soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# "compat" editable mode puts the checkout on sys.path, which is where Twisted looks for
# twisted/plugins/; tests/test_plugin.py also checks a real (non-editable) install.
EDITABLE := --config-settings editable_mode=compat

$(VENV)/.installed-run: $(BIN)/python setup.cfg pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt $(EDITABLE) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-run
	$(PIP) install -q -c constraints.txt $(EDITABLE) -e '.[test]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-run
	$(PIP) install -q -c constraints.txt $(EDITABLE) -e '.[bench]'
	touch $@

run: $(VENV)/.installed-run
	$(BIN)/twistd --pidfile= -n iradialer $(ARGS)

test: $(VENV)/.installed-test
	./scripts/system-deps.sh $(TEST_DEBS)
	$(BIN)/pytest $(PYTEST_ARGS)

# The load benchmark of docs/benchmarks.md: 100 calls/s to 1,000 calls with CPA, held 60 s.
# Another run: make bench BENCH_ARGS="--outcomes answered --max-calls 500 --requests 200"
BENCH_ARGS ?= --cps 100 --max-calls 1000 --hold 60 --plot docs/benchmarks-load.png
bench: $(VENV)/.installed-bench
	$(BIN)/python scripts/bench_load.py $(BENCH_ARGS)

# The fault tests with longer outages and more calls than the suite runs them with.
soak: $(VENV)/.installed-test
	IRADIALER_SOAK=1 $(BIN)/pytest -p no:cacheprovider tests/test_faults.py $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(PIP) install -q ruff
	$(BIN)/ruff check iradialer tests scripts
	$(BIN)/ruff format --check iradialer tests scripts

typecheck: $(VENV)/.installed-test
	$(PIP) install -q mypy mypy-zope
	$(BIN)/mypy

# Record the versions in use so a fresh machine (and CI) installs the same.
lock: $(VENV)/.installed-test
	$(PIP) freeze --exclude-editable --all | grep -v -E '^(pip|setuptools|wheel)==' > constraints.txt

clean:
	rm -rf $(VENV) build dist *.egg-info
