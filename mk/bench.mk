# Benchmarks (docs/performance.md). `make bench` prints one table, every figure beside a
# baseline measured in the same run; it is not part of `make test`, but a smoke run of the
# harness (tiny sizes, a few seconds) is.
#
#   make bench                          the full run, under nice (the machine is shared)
#   make bench BENCH_NICE=              the same on a quiet machine
#   make bench BENCH_ARGS="--sizes 10000,100000 --repeat 5"
#   make bench BENCH_ARGS="--ledger-sizes 100000,10000000"   the ledger pre-filled to 10M
#                                       placements (about 5 minutes and 3 GB more; default 100k,1M)
#
# Fixtures are cached in $(BENCH_DIR)/fixtures; the last table is left in $(BENCH_DIR)/table.md
# and every figure in $(BENCH_DIR)/results.jsonl.

BENCH_DIR ?= $(CACHE_DIR)/bench
BENCH_ARGS ?=
# postgres: also the PostgreSQL ledger's rows (a throw-away cluster the bench starts), each
# beside the SQLite ledger's in the same run; sqlite: without them.
BENCH_SERVICE ?= postgres
BENCH_NICE ?= nice -n 10
# 1: build release builds of the Python wheel and the Node addon for the binding rows (the
# test suites build them unoptimized); 0: use whatever BENCH_PYTHON / BENCH_NODE find.
BENCH_BINDINGS ?= 1
BENCH_PY_ENV := $(BENCH_DIR)/python-env
BENCH_NODE_MODULES := $(BENCH_DIR)/node_modules
# The interpreters for bindings-python/bench/*.py and bindings-node/bench/*.js; each script
# reports {"skip": ...} when its package cannot be imported.
BENCH_PYTHON ?= $(firstword $(wildcard $(BENCH_PY_ENV)/bin/python $(CACHE_DIR)/python/testenv/bin/python) $(shell command -v python3 2>/dev/null))
BENCH_NODE ?= $(shell command -v node 2>/dev/null)
BENCH_NODE_PATH ?= $(BENCH_NODE_MODULES):$(ROOT)/target/node/fresh/node_modules
BENCH_RUN = $(CARGO) run --quiet -p license-backup --example bench --

TEST_SUITES += test-bench-smoke
.PHONY: bench bench-run bench-tools bench-python-env bench-node-package test-bench-smoke

# The baseline's standard tools (Debian's sqlite3 and openssl), installed when missing.
bench-tools:
	@if ! command -v sqlite3 >/dev/null || ! command -v openssl >/dev/null; then \
		echo "bench: installing sqlite3 and openssl for the baseline"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 openssl; \
	fi

bench: bench-tools pg-tools
	if [ "$(BENCH_BINDINGS)" = 1 ]; then \
		$(MAKE) --no-print-directory bench-python-env || echo "bench: no release Python package; its rows may be skipped"; \
		$(MAKE) --no-print-directory bench-node-package || echo "bench: no release Node package; its rows may be skipped"; \
	fi
	$(MAKE) --no-print-directory bench-run

# A make of its own, so BENCH_PYTHON sees the release venv that bench-python-env just made.
bench-run:
	$(CARGO) build --quiet --release -p license-backup --example bench
	$(CARGO) build --quiet --release -p license-backup-service --bin license-backup-service
	@echo "bench: python $(BENCH_PYTHON), node $(BENCH_NODE)"
	NODE_PATH=$(BENCH_NODE_PATH) $(BENCH_NICE) $(CARGO) run --quiet --release -p license-backup --example bench -- \
		--dir $(BENCH_DIR) --root $(ROOT) --python "$(BENCH_PYTHON)" --node "$(BENCH_NODE)" \
		--service-bin $(ROOT)/target/release/license-backup-service --service $(BENCH_SERVICE) $(BENCH_ARGS)
	@echo "bench: what authenticated rows cost (list_licenses checked vs the same SQL unchecked, backup, verify)"
	$(BENCH_NICE) $(CARGO) run --quiet --release -p license-backup --example row_auth_cost -- 100000,1000000 $(BENCH_DIR)/row-auth

# The Python package, built --release with maturin, in its own venv.
bench-python-env: python-tools
	rm -rf $(BENCH_DIR)/py-dist $(BENCH_PY_ENV)
	cd $(PY_DIR) && $(BENCH_NICE) $(PY_TOOLS)/bin/maturin build --quiet --release --interpreter $(PYTHON3) --out $(BENCH_DIR)/py-dist
	$(PYTHON3) -m venv $(BENCH_PY_ENV)
	$(BENCH_PY_ENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-index $(BENCH_DIR)/py-dist/*.whl

# The Node package, its addon built --release, as node_modules/license-backup for NODE_PATH.
bench-node-package: node-tools
	rm -rf $(BENCH_DIR)/node-napi && mkdir -p $(BENCH_DIR)/node-napi
	cd $(NODE_DIR) && $(BENCH_NICE) ./node_modules/.bin/napi build --platform --release --no-const-enum \
		--target-dir $(ROOT)/target --output-dir $(BENCH_DIR)/node-napi --js native.js --dts native.d.ts
	rm -rf $(BENCH_NODE_MODULES)/license-backup && mkdir -p $(BENCH_NODE_MODULES)/license-backup
	cd $(NODE_DIR) && cp $(NODE_PACKAGE_FILES) $(BENCH_NODE_MODULES)/license-backup/
	cp $(BENCH_DIR)/node-napi/*.node $(BENCH_NODE_MODULES)/license-backup/

# Tiny sizes in a scratch folder: checks that the harness runs end to end and prints the table.
test-bench-smoke: service-binary pg-tools
	rm -rf $(CACHE_DIR)/bench-smoke && mkdir -p $(CACHE_DIR)
	NODE_PATH=$(BENCH_NODE_PATH) $(BENCH_RUN) --smoke --service postgres --dir $(CACHE_DIR)/bench-smoke --root $(ROOT) \
		--python "$(BENCH_PYTHON)" --node "$(BENCH_NODE)" > $(CACHE_DIR)/bench-smoke.txt
	@cat $(CACHE_DIR)/bench-smoke.txt
	@for row in '| figure | value | baseline (same run) | ratio | target |' '| backup 2k ' '| restore 2k ' \
		'| peak RSS backup 2k ' '| peak RSS restore 2k ' '| backup 1k end-to-end, Rust ' '| events/s into a Rust callback ' \
		'| restore 2k through the server ' '| peak RSS client, restore 2k through the server ' \
		'| peak RSS server, restore 2k through the server ' '| authorizations/s, 1,000-license archives, 8 clients ' \
		'| authorizations/s, 1,000-license archives, 8 clients, PostgreSQL (2 instances) ' \
		'| authorizations/s, 1,000-license archives, 32 clients, PostgreSQL (2 instances) ' \
		'| one 2k-license authorization, PostgreSQL '; do \
		grep -qF -- "$$row" $(CACHE_DIR)/bench-smoke.txt || { echo "test-bench-smoke: missing row: $$row"; exit 1; }; \
	done
	@if command -v sqlite3 >/dev/null && command -v openssl >/dev/null; then \
		! grep -q 'NaN' $(CACHE_DIR)/bench-smoke.txt || { echo "test-bench-smoke: a figure is NaN"; exit 1; }; fi
	@echo "test-bench-smoke: the bench harness printed its table"
