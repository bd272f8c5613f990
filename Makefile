# The two commands: `make run` and `make test` (see README.md). `make bench` for the benchmarks;
# `make wait` and `make stop` for a server that `make run &` started in the background.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip --disable-pip-version-check -q
STEP := scripts/step.sh
# Where `make run` records its server's pid, for `make stop`.
RUN_PID := $(or $(GATEWAY_DATA_DIR),var)/serve.pid
URL := http://127.0.0.1:$(or $(GATEWAY_PORT),8080)

.PHONY: run wait stop test bench install install-test tools clean

$(VENV)/.installed: setup.py
	@$(STEP) "creating $(VENV)" $(PYTHON) -m venv $(VENV)
	@$(STEP) "installing the gateway into $(VENV)" $(PIP) install -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	@$(STEP) "installing the test dependencies into $(VENV)" $(PIP) install -e '.[test]'
	@touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-test
	@$(STEP) "installing the benchmark dependencies into $(VENV)" $(PIP) install -e '.[test,bench]'
	@touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

tools:
	@bash scripts/install-tools.sh

# exec: the recorded pid is the server's own, so `make stop` (or a SIGTERM to make) stops it gracefully.
run: install
	@mkdir -p $(dir $(RUN_PID)) && echo $$$$ > $(RUN_PID) && exec $(PY) -m gateway serve

wait:
	@echo "waiting for $(URL)/health/live"
	@for i in $$(seq 3000); do curl -sf -o /dev/null $(URL)/health/live && exit 0; sleep 0.1; done; \
	  echo "no answer from $(URL)/health/live after 300 s" >&2; exit 1

# Only a pid that is still a `gateway serve` is signalled: the file may be stale after a crash.
stop:
	@pid=$$(cat $(RUN_PID) 2>/dev/null) && rm -f $(RUN_PID) && ps -p $$pid -o command= | grep -q 'gateway serve' \
	  || { echo "no server started by make run is running" >&2; exit 1; }; \
	  kill $$pid; while kill -0 $$pid 2>/dev/null; do sleep 0.1; done; echo "stopped the server (pid $$pid)"

test: install-test tools
	$(PY) -m pytest -p no:cacheprovider tests

bench: $(VENV)/.installed-bench tools
	$(PY) -m bench
	$(PY) -m bench.layers
	$(PY) -m bench.instructions

clean:
	rm -rf $(VENV) .venv-checkov var
