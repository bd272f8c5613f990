# The two commands: `make run` and `make test` (see README.md). `make bench` for the benchmarks.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip --disable-pip-version-check -q

.PHONY: run test bench install install-test tools clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -e '.[test]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(PIP) install -e '.[test,bench]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

tools:
	bash scripts/install-tools.sh

run: install
	$(PY) -m gateway serve

test: install-test tools
	$(PY) -m pytest -p no:cacheprovider tests

bench: $(VENV)/.installed-bench tools
	$(PY) -m bench
	$(PY) -m bench.layers
	$(PY) -m bench.instructions

clean:
	rm -rf $(VENV) .venv-checkov var
