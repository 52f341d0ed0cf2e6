# One entry point for setting up, running and testing trio-procmgr.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup run test test-deps typecheck bench install deb man clean

$(VENV)/.installed: pyproject.toml setup.py trio_procmgr/platform/_clone3spawn.c
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

## mypy --strict over trio_procmgr/ (configured in pyproject.toml, [tool.mypy]).
typecheck: setup
	$(PY) -m mypy

## Benchmarks against supervisord and circus (docs/benchmarks.md); e.g. BENCH_ARGS="--quick".
bench: setup
	$(PY) -m benchmarks.run $(BENCH_ARGS)

## Install daemon + CLI (+ deps, unit, man pages, completions) under $(DESTDIR)$(PREFIX).
## PREFIX defaults to /usr/local; see packaging/install.sh for the layout and variables.
PREFIX ?= /usr/local
install: setup
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" PYTHON="$(abspath $(PY))" bash packaging/install.sh

## Build dist/dd-procmgr_VERSION_ARCH.deb (dpkg-deb); install with `dpkg -i dist/dd-procmgr_*.deb`.
deb: setup
	PYTHON="$(abspath $(PY))" bash packaging/build-deb.sh

## Write the man pages dd-procmgr.1 and dd-procmgrd.8 into build/man/.
man: setup
	mkdir -p build/man && $(PY) -m dd_procmgr_cli.manpage build/man

clean:
	rm -rf $(VENV) .run build dist *.egg-info
