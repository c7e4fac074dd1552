# license-backup: one Rust core, three binding packages.
#
#   make demo      the license-backup tool: back up a device, "move" to a second one, restore
#   make demo-library   the same through the Rust library, printing every event
#   make test      every suite: Rust, conformance scenarios, Python, Node, Swift
#   make generate  regenerate every generated file: core/interface.json, the expanded scenarios,
#                  the bindings' repeated parts (lb-generate, from the core's interface
#                  definition), then Node's native.js / native.d.ts (napi) and the Swift bindings
#                  (uniffi), which are built from the generated Rust
#   make bench     benchmarks (not part of make test)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
CARGO ?= cargo
# Caches live in ignored folders inside the repo, or outside it.
CACHE_DIR ?= $(ROOT)/.cache
export CARGO_TERM_COLOR ?= never

# Each binding's mk/*.mk appends its suite to TEST_SUITES and its generators to GENERATE.
TEST_SUITES := test-rust
GENERATE := generate-interface generate-scenarios generate-bindings


.PHONY: test-suites
.PHONY: all demo demo-library test generate bench test-rust lint-rust generate-interface generate-scenarios generate-bindings fs-tools pg-tools
all: test

include $(sort $(wildcard $(ROOT)/mk/*.mk))
# The bench smoke run goes last: it runs the binding bench scripts against the packages the
# binding suites just built.
TEST_SUITES := $(filter-out test-bench-smoke,$(TEST_SUITES)) $(filter test-bench-smoke,$(TEST_SUITES))

demo:
	$(CARGO) build --quiet --release -p license-backup-cli --bin license-backup
	$(CARGO) build --quiet --release -p license-backup --example demo
	$(ROOT)/scripts/demo.sh $(ROOT)/target/release

demo-library:
	$(CARGO) run --quiet --release -p license-backup --example demo

# Runs every suite, keeping a log, then prints one closing line with the tests of all runners.
test:
	@mkdir -p $(CACHE_DIR)
	$(MAKE) --no-print-directory test-suites 2>&1 | tee $(CACHE_DIR)/make-test.log
	@echo "make test: all suites passed ($(TEST_SUITES))"
	@python3 $(ROOT)/scripts/test-summary.py $(CACHE_DIR)/make-test.log

test-suites: $(TEST_SUITES)

generate: $(GENERATE)

generate-interface:
	$(CARGO) run --quiet -p license-backup-devtools --bin lb-interface -- --write

# tests/scenarios/expanded/: every scenario's licenses and archive damage spelled out for the
# runners; then tests/scenarios/coverage.md, which the Rust runner writes from what the scenarios
# reached (its test fails when the committed one is stale). Its "server" mode runs the
# service binary LICENSE_BACKUP_SERVICE names (mk/service.mk): built first, so it is never
# missing or stale.
generate-scenarios: service-binary
	$(CARGO) run --quiet -p license-backup-devtools --bin lb-scenarios -- --write
	SCENARIOS_BLESS=1 $(CARGO) test --quiet -p license-backup --test scenarios >/dev/null

# The bindings' repeated parts (error tables, records, events, accessors, validation tables,
# declarations), written from the core's interface definition; a devtools test keeps them fresh.
generate-bindings:
	$(CARGO) run --quiet -p license-backup-devtools --bin lb-generate -- --write

lint-rust:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings

# The removable-media tests (core/tests/media.rs) mount FAT, exFAT and NTFS images and an sshfs
# share through FUSE: their drivers come from Debian's packages, installed when missing. The
# Secret Service protector's test (core/tests/keyring_secret_service.rs) starts its own D-Bus
# session and GNOME Keyring daemon: keystore-tools.sh installs them (Debian packages, once).
fs-tools:
	$(ROOT)/scripts/fs-tools.sh

# The service's PostgreSQL tests (service/tests/postgres.rs) start a throw-away cluster of their
# own; pg-tools.sh installs the server (Debian's postgresql) when it is missing.
pg-tools:
	$(ROOT)/scripts/pg-tools.sh

test-rust: lint-rust fs-tools pg-tools
	bash $(ROOT)/scripts/keystore-tools.sh
	$(CARGO) test --workspace --quiet
