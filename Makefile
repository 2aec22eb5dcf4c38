# relaygate: `make run` starts the stack and shows it working; `make test` runs the tests.
# Both set up everything they need on a fresh machine (venv, pip, apt-get).
SHELL := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
APT    := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get)

.PHONY: run test test-fast lint bench policy-test verifier system-deps clean help

help:
	@echo "make run          start provider simulator + control plane + relaygate-extproc + Envoy and run a tour"
	@echo "make test         run the whole test suite (real Envoy, real SDKs), after make lint"
	@echo "make test-fast    run the unit tier only (tests/unit: no servers, seconds)"
	@echo "make lint         ruff check + ruff format --check on the tree, mypy --strict on relaygate/contract, relaygate/decision and relaygate/evidence"
	@echo "make policy-test  run the Rego unit tests in policies/"
	@echo "make bench        benchmark plain Envoy against the full relaygate path, then the peer table (../shared/peers) when installed"
	@echo "make verifier     build dist/relaygate-verify.pyz, the single-file offline evidence verifier (pin the root: --trusted-key)"

system-deps:
	@missing=""; for tool in curl:curl wrk:wrk runuser:util-linux redis-server:redis-server \
	  docker-compose:docker-compose iptables:iptables ip:iproute2 podman:podman debootstrap:debootstrap \
	  runc:runc catatonit:catatonit promtool:prometheus amtool:prometheus-alertmanager; do \
	  command -v $${tool%%:*} >/dev/null || missing="$$missing $${tool##*:}"; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing="$$missing postgresql"; \
	[ -x /usr/lib/cni/dnsname ] || missing="$$missing golang-github-containernetworking-plugin-dnsname"; \
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
	@# xds-protos carries an old copy of the OpenTelemetry protos at opentelemetry-proto's paths, and
	@# whichever pip installs last wins; the tracing exporter needs opentelemetry-proto's, so it goes last.
	$(BIN)/pip install -q --no-deps --force-reinstall "opentelemetry-proto==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m devstack.run $(ARGS)

# PostgreSQL (storage tests) and Redis (budgets shared by gateways) run on loopback for the
# length of the run.
test: $(STAMP) lint
	@$(BIN)/python -m devstack.tools helm >/dev/null   # helm for the chart's tests: built once with go install, cached
	@$(BIN)/python -m devstack.tools opa >/dev/null    # OPA for the Rego conformance tests: the same way
	@mkdir -p .run && $(BIN)/python -m devstack.postgres start .run/pg-test > .run/pg-test.url
	@$(BIN)/python -m devstack.redis_server start .run/redis-test > .run/redis-test.url
	@RELAYGATE_TEST_POSTGRES=$$(cat .run/pg-test.url) RELAYGATE_TEST_REDIS=$$(cat .run/redis-test.url) \
	  $(BIN)/python -m pytest -q -ra tests/unit tests/system; rc=$$?; \
	  $(BIN)/python -m devstack.redis_server stop .run/redis-test; \
	  $(BIN)/python -m devstack.postgres stop .run/pg-test; exit $$rc

# The unit tier: the decision library, the servicer and the access-log sink driven in-process with
# constructed protobufs, parsers, the Merkle log, the contract's seams. No servers; seconds.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -ra tests/unit

# ruff (errors pyflakes would catch, and the formatting) on the whole tree; mypy --strict on the
# contract, decision and evidence packages.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

policy-test: $(STAMP)
	$(BIN)/python -m relaygate.decision.policy_tests policies

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.peers

# The offline verifier as one file: the evidence package and its three dependencies,
# zipped by shiv (native wheels are unpacked to ~/.shiv on first run). Needs only python3.
verifier: $(STAMP)
	rm -rf build/verifier && mkdir -p build/verifier dist
	$(BIN)/pip install -q --target build/verifier cryptography==50.0.2 rfc8785==0.1.4 orjson==3.13.0
	mkdir -p build/verifier/relaygate && cp relaygate/__init__.py build/verifier/relaygate/
	cp -r relaygate/evidence build/verifier/relaygate/ && rm -rf build/verifier/relaygate/evidence/__pycache__
	$(BIN)/shiv --site-packages build/verifier -e relaygate.evidence.cli:main -p '/usr/bin/env python3' \
	  --reproducible -o dist/relaygate-verify.pyz
	@echo "built dist/relaygate-verify.pyz: python3 dist/relaygate-verify.pyz verify BUNDLE --trusted-key ROOT.pem [--after-checkpoint FILE]"
	@echo "  (without --trusted-key trust is only self-asserted: exit 3 unless --allow-unpinned)"

clean:
	rm -rf $(VENV) var .run *.egg-info build dist
