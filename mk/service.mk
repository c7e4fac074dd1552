# The License Management Service server (service/, binary license-backup-service).
#
#   make demo-network   the demo's story through a server it starts and stops itself
#
# The binding suites start real server processes (tests/scenarios in "server" mode, the
# RemoteService tests): they find the binary through LICENSE_BACKUP_SERVICE. `cargo test
# --workspace` (test-rust) builds it; service-binary builds it when a suite runs alone.

SERVICE_BIN := $(ROOT)/target/debug/license-backup-service
export LICENSE_BACKUP_SERVICE := $(SERVICE_BIN)

.PHONY: service-binary demo-network

service-binary:
	@test -x $(SERVICE_BIN) || $(CARGO) build --quiet -p license-backup-service --bin license-backup-service
