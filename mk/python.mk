# Python package (bindings-python/): a pyo3 + maturin abi3 wheel, tested as installed.
#
#   make test-python      build the wheel, install it into a fresh venv and run pytest from
#                         outside the source tree: API, errors, threads, asyncio, scenarios,
#                         parity, stubtest, mypy --strict and the example
# The generated files (license_backup/_errors.py, ...) are written by `make generate-bindings`.
#
# Tools live in $(CACHE_DIR)/python: a venv with maturin and a wheelhouse with the test
# requirements, made once (again when the requirement files change) and reused offline.

PY_DIR := $(ROOT)/bindings-python
PY_CACHE := $(CACHE_DIR)/python
PY_TOOLS := $(PY_CACHE)/tools
PY_WHEELHOUSE := $(PY_CACHE)/wheelhouse
PY_DIST := $(PY_CACHE)/dist
PY_TESTENV := $(PY_CACHE)/testenv
PY_RUNDIR := $(PY_CACHE)/run
PYTHON3 ?= python3
MATURIN_VERSION := 1.16.0
# dev: unoptimized but built in seconds; the suite is not performance-bound. The wheel is built
# for the same target, C toolchain and manylinux2014 tag as its `make dist` counterpart
# (CROSS_HOST, PY_HOST_COMPAT: mk/dist.mk), so a tag or packaging mistake fails the suite.
PY_PROFILE ?= dev

TEST_SUITES += test-python

.PHONY: test-python python-tools python-wheel

$(PY_TOOLS)/.stamp: $(PY_DIR)/requirements-test.txt $(ROOT)/mk/python.mk
	rm -rf $(PY_TOOLS) $(PY_WHEELHOUSE)
	$(PYTHON3) -m venv $(PY_TOOLS)
	$(PY_TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check maturin==$(MATURIN_VERSION)
	$(PY_TOOLS)/bin/python -m pip download --quiet --disable-pip-version-check -d $(PY_WHEELHOUSE) -r $(PY_DIR)/requirements-test.txt
	touch $@

python-tools: $(PY_TOOLS)/.stamp

python-wheel: python-tools
	rm -rf $(PY_DIST)
	cd $(PY_DIR) && $(CROSS_HOST) $(PY_TOOLS)/bin/maturin build --quiet --profile $(PY_PROFILE) --interpreter $(PYTHON3) \
		$(PY_HOST_COMPAT) --out $(PY_DIST)

test-python: python-wheel service-binary
	@start=$$(date +%s); \
	rm -rf $(PY_TESTENV) $(PY_RUNDIR); mkdir -p $(PY_RUNDIR); \
	$(PYTHON3) -m venv $(PY_TESTENV); \
	$(PY_TESTENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-index \
		--find-links $(PY_WHEELHOUSE) -r $(PY_DIR)/requirements-test.txt $(PY_DIST)/*.whl; \
	echo "test-python: $$(cd $(PY_DIST) && ls *.whl) installed into a fresh venv"; \
	cd $(PY_RUNDIR) && LICENSE_BACKUP_REPO=$(ROOT) $(PY_TESTENV)/bin/python -m pytest -p no:cacheprovider \
		--rootdir $(PY_DIR)/tests $(PY_DIR)/tests; \
	echo "test-python: venv + tests took $$(( $$(date +%s) - start )) s"
