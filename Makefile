# relaygate: `make run` starts the stack and shows it working; `make test` runs the tests.
# Both set up everything they need on a fresh machine (venv, pip, apt-get).
SHELL := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
APT    := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get)

.PHONY: run test bench policy-test system-deps clean help

help:
	@echo "make run          start provider simulator + control plane + relaygate-extproc + Envoy and run a tour"
	@echo "make test         run the whole test suite (real Envoy, real SDKs)"
	@echo "make policy-test  run the Rego unit tests in policies/"
	@echo "make bench        benchmark plain Envoy against the full relaygate path"

system-deps:
	@missing=""; for tool in curl:curl wrk:wrk runuser:util-linux; do \
	  command -v $${tool%%:*} >/dev/null || missing="$$missing $${tool##*:}"; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then echo "apt-get install$$missing"; \
	  $(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq $$missing >/dev/null; fi
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "Python 3.11+ needed; installing Debian's python3"; \
	  $(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq python3 python3-venv >/dev/null; }

$(STAMP): pyproject.toml requirements/regorus.txt
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements/regorus.txt
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m stack.run $(ARGS)

# PostgreSQL for the storage tests runs on loopback for the length of the run.
test: $(STAMP)
	@mkdir -p .run && $(BIN)/python -m stack.postgres start .run/pg-test > .run/pg-test.url
	@RELAYGATE_TEST_POSTGRES=$$(cat .run/pg-test.url) $(BIN)/python -m pytest -q -ra tests; rc=$$?; \
	  $(BIN)/python -m stack.postgres stop .run/pg-test; exit $$rc

policy-test: $(STAMP)
	$(BIN)/python -m extproc.policy_tests policies

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) var .run *.egg-info
