# The License Management Service server (service/, binary license-backup-service).
#
#   make demo-network   the demo's story through a server it starts and stops itself
#
# The binding suites start real server processes (tests/scenarios in "server" mode, the
# RemoteService tests): they find the binary through LICENSE_BACKUP_SERVICE. `cargo test
# --workspace` (test-rust) builds it; service-binary builds it (if stale) when a suite runs alone.

SERVICE_BIN := $(ROOT)/target/debug/license-backup-service
export LICENSE_BACKUP_SERVICE := $(SERVICE_BIN)

.PHONY: service-binary demo-network

service-binary:
	$(CARGO) build --quiet -p license-backup-service --bin license-backup-service

# The demo's story (make demo) through a license-backup-service the demo starts on 127.0.0.1
# (its own key, token, CA and certificate in target/demo-network/service) and stops at the end.
demo-network:
	$(CARGO) build --quiet --release -p license-backup-service --bin license-backup-service
	DEMO_DIR=$(ROOT)/target/demo-network $(CARGO) run --quiet --release -p license-backup --example demo -- \
		--network $(ROOT)/target/release/license-backup-service
