# One entry point for setting up, running and testing trio-procmgr.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup run test test-deps bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

## Run the daemon in the foreground on the bundled examples.
## As root the socket is /run/dd-procmgr.sock, otherwise a per-user path.
run: setup
	$(VENV)/bin/dd-procmgrd --config-dir examples --state-dir $(CURDIR)/.run/state --log-level info

## System packages the interop tests drive (redis-server, nginx); installed only as root.
test-deps:
	bash packaging/install-test-deps.sh

test: setup test-deps
	$(PY) -m pytest $(PYTEST_ARGS)

## Benchmarks against supervisord and circus (docs/benchmarks.md); e.g. BENCH_ARGS="--quick".
bench: setup
	$(PY) -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .run build *.egg-info
