# Hardening: fuzzing (nightly flags on the stable toolchain) and the long sweeps.
# The fast parts (fuzz corpora as tests, tamper sweep, crash sweep, stress) run in
# `cargo test --workspace`, so `make test` needs nothing more. See docs/reliability.md.
#
#   make fuzz                  each target for FUZZ_SECONDS (default 600), niced
#   make fuzz FUZZ_TARGETS=restore FUZZ_SECONDS=60
#   make fuzz-build            build the targets only
#   make hardening-long        the crash sweep with 1000 points and a 60 s stress run

FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= archive_reader restore service_stream properties restorer_paths
# New inputs go to an ignored working corpus; the committed seeds in fuzz/corpus/ are read only.
FUZZ_WORK ?= $(ROOT)/fuzz/corpus-work
FUZZ_ENV := RUSTC_BOOTSTRAP=1
FUZZ_ARGS ?= -timeout=30 -rss_limit_mb=2048 -print_final_stats=1
# The engine runs each operation on a detached worker thread; LeakSanitizer may check while one
# is still exiting and report its thread-local destructor list (32 bytes from
# __cxa_thread_atexit_impl) or, at exit, the last worker's spawn data as a leak. Leak checks
# stay on for the pure targets.
FUZZ_NO_LEAK_CHECK := restore restorer_paths

.PHONY: fuzz fuzz-build fuzz-check hardening-long

fuzz-check:
	@command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 1; }

fuzz-build: fuzz-check
	cd $(ROOT)/fuzz && $(FUZZ_ENV) nice -n 19 $(CARGO) fuzz build -O

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_WORK)/$$t; extra=""; asan=""; \
	  case " $(FUZZ_NO_LEAK_CHECK) " in *" $$t "*) extra=-detect_leaks=0; asan=ASAN_OPTIONS=detect_leaks=0;; esac; \
	  echo "== fuzzing $$t for $(FUZZ_SECONDS) s (log: $(FUZZ_WORK)/$$t.log)"; \
	  ( cd $(ROOT)/fuzz && env $$asan $(FUZZ_ENV) nice -n 19 $(CARGO) fuzz run -O $$t $(FUZZ_WORK)/$$t corpus/$$t -- \
	      -max_total_time=$(FUZZ_SECONDS) $(FUZZ_ARGS) $$extra ) > $(FUZZ_WORK)/$$t.log 2>&1 \
	    || { tail -40 $(FUZZ_WORK)/$$t.log; echo "fuzz target $$t failed: see fuzz/artifacts/$$t/" >&2; exit 1; }; \
	  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done )" $(FUZZ_WORK)/$$t.log || true; \
	done

hardening-long:
	LB_CRASH_POINTS=1000 LB_STRESS_SECS=60 nice -n 19 $(CARGO) test -p license-backup --test crash --test stress -- --nocapture
