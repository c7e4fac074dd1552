# Benchmarks (docs/performance.md). `make bench` prints one table, every figure beside a
# baseline measured in the same run; it is not part of `make test`, but a smoke run of the
# harness (tiny sizes, a few seconds) is.
#
#   make bench                          the full run, under nice (the machine is shared)
#   make bench BENCH_NICE=              the same on a quiet machine
#   make bench BENCH_ARGS="--sizes 10000,100000 --repeat 5"
#
# Fixtures are cached in $(BENCH_DIR)/fixtures; the last table is left in $(BENCH_DIR)/table.md
# and every figure in $(BENCH_DIR)/results.jsonl.

BENCH_DIR ?= $(CACHE_DIR)/bench
BENCH_ARGS ?=
BENCH_NICE ?= nice -n 10
# The interpreters for bindings-python/bench/*.py and bindings-node/bench/*.js; each script
# reports {"skip": ...} when its package is not installed. The Python one is the venv that
# `make test-python` builds, when there is one.
BENCH_PYTHON ?= $(firstword $(wildcard $(ROOT)/bindings-python/.venv/bin/python $(CACHE_DIR)/venv/bin/python $(CACHE_DIR)/python/venv/bin/python $(CACHE_DIR)/.venv/bin/python) $(shell command -v python3 2>/dev/null))
BENCH_NODE ?= $(shell command -v node 2>/dev/null)
BENCH_RUN = $(CARGO) run --quiet -p license-backup --example bench --

TEST_SUITES += test-bench-smoke
.PHONY: bench test-bench-smoke

bench:
	$(CARGO) build --quiet --release -p license-backup --example bench
	$(BENCH_NICE) $(CARGO) run --quiet --release -p license-backup --example bench -- \
		--dir $(BENCH_DIR) --root $(ROOT) --python "$(BENCH_PYTHON)" --node "$(BENCH_NODE)" $(BENCH_ARGS)

# Tiny sizes in a scratch folder: checks that the harness runs end to end and prints the table.
test-bench-smoke:
	rm -rf $(CACHE_DIR)/bench-smoke && mkdir -p $(CACHE_DIR)
	$(BENCH_RUN) --smoke --dir $(CACHE_DIR)/bench-smoke --root $(ROOT) \
		--python "$(BENCH_PYTHON)" --node "$(BENCH_NODE)" > $(CACHE_DIR)/bench-smoke.txt
	@cat $(CACHE_DIR)/bench-smoke.txt
	@for row in '| figure | value | baseline (same run) | ratio | target |' '| backup 2k ' '| restore 2k ' \
		'| peak RSS backup 2k ' '| peak RSS restore 2k ' '| backup 1k end-to-end, Rust ' '| events/s into a Rust callback '; do \
		grep -qF -- "$$row" $(CACHE_DIR)/bench-smoke.txt || { echo "test-bench-smoke: missing row: $$row"; exit 1; }; \
	done
	@if command -v sqlite3 >/dev/null && command -v openssl >/dev/null; then \
		! grep -q 'NaN' $(CACHE_DIR)/bench-smoke.txt || { echo "test-bench-smoke: a figure is NaN"; exit 1; }; fi
	@echo "test-bench-smoke: the bench harness printed its table"
