# Release artifacts (docs/release.md). Not part of `make test` (they take long), except the
# release checks (`test-release`: one version and metadata, the dependency audit, the notices).
#
#   make dist          wheels + sdist, npm main + platform packages, LicenseBackup.xcframework
#                      into dist/ (ignored), one target at a time under nice
#   make dist-check    verify every artifact: run what runs here (host, Debian 11 and Debian 13
#                      chroots: Python 3.9 and 3.13, arm64 chroot under qemu) with the packages'
#                      own test suites, inspect the rest
#   make notices       regenerate THIRD-PARTY-NOTICES.md (cargo-about)
#   make test-release  the release checks that `make test` runs
#
#   make dist DIST_ARGS="--only python --targets x86_64-unknown-linux-gnu"
#   make dist-check DIST_CHECK_ARGS="--skip arm64"

DIST_DIR ?= $(ROOT)/dist
DIST_ARGS ?=
DIST_CHECK_ARGS ?=
# The host's build of the Python wheel and the npm addon that the suites test goes through the
# same C toolchain and compatibility floor as its `make dist` counterpart (glibc 2.17 through
# zig): `$(CROSS_HOST) cmd` runs cmd with that environment.
# They build in a target folder of their own (scripts/cross_env.py says why).
HOST_TRIPLE := $(shell rustc -vV | sed -n 's/^host: //p')
HOST_DIST_TARGET_DIR := $(ROOT)/target/host-dist
CROSS_HOST = CARGO_TARGET_DIR=$(HOST_DIST_TARGET_DIR) python3 $(ROOT)/scripts/cross_env.py exec $(HOST_TRIPLE) --
# What the host's wheel says it is compatible with, as in `make dist`.
PY_HOST_COMPAT := --target $(HOST_TRIPLE) --compatibility manylinux2014
BUILD_TOOLS_DIR = $(shell $(ROOT)/scripts/build-tools.sh python)

TEST_SUITES += test-release
GENERATE += generate-release

.PHONY: dist dist-check notices test-release test-deny test-notices generate-release

dist: node-tools test-release
	@start=$$(date +%s); \
	python3 $(ROOT)/scripts/dist.py --out $(DIST_DIR) $(DIST_ARGS); \
	echo "make dist: $$(( $$(date +%s) - start )) s"

dist-check: node-tools python-tools service-binary
	@start=$$(date +%s); \
	python3 $(ROOT)/scripts/dist_check.py --dist $(DIST_DIR) $(DIST_CHECK_ARGS); \
	echo "make dist-check: $$(( $$(date +%s) - start )) s"

notices:
	python3 $(ROOT)/scripts/notices.py write

# The notices are regenerated (a few minutes) only when their inputs changed.
generate-release:
	python3 $(ROOT)/scripts/release_meta.py write
	python3 $(ROOT)/scripts/notices.py check >/dev/null 2>&1 || python3 $(ROOT)/scripts/notices.py write

# cargo-deny (deny.toml): licenses, bans and sources; then the advisories against the local clone
# of the RustSec database in ADVISORY_DB, offline (no fetch: CI reaches no GitHub). Without that
# clone the advisories are not checked, and it says so. cargo-deny looks for the database under
# deny.toml's db-path, in a folder named for its URL: the link below gives it that name.
ADVISORY_DB ?= $(HOME)/.cache/license-backup/advisory-db
ADVISORY_DBS := $(HOME)/.cache/license-backup/advisory-dbs
ADVISORY_DB_DIRNAME := advisory-db-3157b0e258782691
test-deny:
	deny=$$($(ROOT)/scripts/build-tools.sh deny)/cargo-deny; \
	$$deny --manifest-path $(ROOT)/Cargo.toml --workspace check --hide-inclusion-graph licenses bans sources && \
	if [ -d "$(ADVISORY_DB)/crates" ]; then \
		mkdir -p $(ADVISORY_DBS) && ln -sfn "$(ADVISORY_DB)" $(ADVISORY_DBS)/$(ADVISORY_DB_DIRNAME) && \
		echo "test-deny: advisories against $(ADVISORY_DB) (RustSec database of $$(git -C "$(ADVISORY_DB)" log -1 --format=%cs))" && \
		$$deny --manifest-path $(ROOT)/Cargo.toml --workspace --offline check --hide-inclusion-graph advisories; \
	else \
		echo "test-deny: ADVISORIES NOT CHECKED: no RustSec advisory database at $(ADVISORY_DB)."; \
		echo "  Populate it (where GitHub is reachable): git clone https://github.com/rustsec/advisory-db $(ADVISORY_DB)"; \
		echo "  (docs/release.md, \"Dependency audit\")"; \
	fi

test-notices:
	python3 $(ROOT)/scripts/notices.py check

test-release: test-deny test-notices
	python3 $(ROOT)/scripts/release_meta.py check
