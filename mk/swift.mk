# Swift bindings (bindings-swift/, uniffi) and the Swift example (examples/swift/).
#
#   make test-swift      toolchain (if needed) -> Rust cdylib (debug) -> generated files fresh?
#                        -> swift build + XCTest of the LicenseBackup package -> example runs
#   make generate-swift  regenerate bindings-swift/Sources/{LicenseBackupBindings,LicenseBackupFFI}
#
# Swift runs in a Debian trixie chroot (Debian 12 has no Swift): scripts/swift-toolchain.sh
# installs it once (~70 s, into ~/.cache/license-backup/swift-trixie), scripts/swift-run.sh runs
# commands in it with the repository bound at the same path. The Swift code links the debug
# cdylib the host builds (generation needs an unstripped build anyway).

TEST_SUITES += test-swift
GENERATE += generate-swift

SWIFT_DIR := $(ROOT)/bindings-swift
SWIFT_EXAMPLE_DIR := $(ROOT)/examples/swift
SWIFT_RUN := $(ROOT)/scripts/swift-run.sh
SWIFT_GENERATED_SWIFT := $(SWIFT_DIR)/Sources/LicenseBackupBindings/LicenseBackupBindings.swift
SWIFT_GENERATED_HEADER := $(SWIFT_DIR)/Sources/LicenseBackupFFI/LicenseBackupFFI.h

# Where cargo puts the cdylib (honours CARGO_TARGET_DIR and .cargo/config), resolved when used.
swift_target_dir = $(shell $(CARGO) metadata --format-version 1 --no-deps --manifest-path $(ROOT)/Cargo.toml | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

.PHONY: test-swift generate-swift swift-toolchain swift-cdylib swift-check-generated swift-package-test swift-example

swift-toolchain:
	$(ROOT)/scripts/swift-toolchain.sh

swift-cdylib:
	$(CARGO) build --quiet -p license-backup-swift

# Generates into $(1) from the debug cdylib, with the workspace's own uniffi-bindgen.
define swift_generate
	$(CARGO) run --quiet -p uniffi-bindgen -- generate --no-format --language swift \
		--library "$(swift_target_dir)/debug/liblicense_backup_swift.so" --out-dir "$(1)"
endef

generate-swift: swift-cdylib
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(call swift_generate,$$tmp) && \
	cp "$$tmp/LicenseBackupBindings.swift" "$(SWIFT_GENERATED_SWIFT)" && \
	cp "$$tmp/LicenseBackupFFI.h" "$(SWIFT_GENERATED_HEADER)"
	@echo "generate-swift: wrote $(SWIFT_GENERATED_SWIFT) and $(SWIFT_GENERATED_HEADER)"

# Fails when the committed generated files differ from what the current Rust code generates.
swift-check-generated: swift-cdylib
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(call swift_generate,$$tmp) && \
	if ! diff -u "$(SWIFT_GENERATED_SWIFT)" "$$tmp/LicenseBackupBindings.swift" >"$$tmp/diff" || \
	   ! diff -u "$(SWIFT_GENERATED_HEADER)" "$$tmp/LicenseBackupFFI.h" >>"$$tmp/diff"; then \
		head -n 40 "$$tmp/diff"; \
		echo "error: the generated Swift bindings are stale; refresh them with: make generate-swift" >&2; \
		exit 1; \
	fi
	@echo "swift-check-generated: generated Swift bindings are fresh"

# -L/-rpath point the Swift linker and the test binary at the host-built cdylib; -B binds the
# target dir into the chroot when it lies outside the repository.
swift_link_flags = -Xlinker -L$(swift_target_dir)/debug -Xlinker -rpath -Xlinker $(swift_target_dir)/debug
swift_binds = $(if $(filter $(ROOT)/%,$(swift_target_dir)),,-B $(swift_target_dir)/debug)

swift-package-test: swift-toolchain swift-cdylib service-binary
	$(SWIFT_RUN) -C $(SWIFT_DIR) $(swift_binds) -- swift build --build-tests $(swift_link_flags)
	$(SWIFT_RUN) -C $(SWIFT_DIR) $(swift_binds) -e LICENSE_BACKUP_SERVICE=$(SERVICE_BIN) -- swift test --skip-build $(swift_link_flags)

swift-example: swift-toolchain swift-cdylib
	$(SWIFT_RUN) -C $(SWIFT_EXAMPLE_DIR) $(swift_binds) -- swift build $(swift_link_flags)
	$(SWIFT_RUN) -C $(SWIFT_EXAMPLE_DIR) $(swift_binds) -- .build/debug/license-backup-example

test-swift: swift-check-generated swift-package-test swift-example
	@echo "test-swift: passed"
