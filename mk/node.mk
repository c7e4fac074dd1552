# Node package (bindings-node/): napi-rs addon + JavaScript wrapper, published as `license-backup`.
#
#   make test-node      build the addon with the napi CLI, pack the main package and this
#                       platform's package, install both tarballs (and @types/node, as a
#                       TypeScript user does) in a fresh folder and run `node --test` there
#                       (it type-checks consumer projects with TypeScript 5 and 7 too); then
#                       the Electron-style example
#   make generate-node  rewrite the generated native.js / native.d.ts (committed)
#
# The napi CLI, TypeScript 5 (`typescript`) and the current major (`typescript-7`, an npm
# alias) for the consumer type checks, @types/node, and fast-check (the property-based tests,
# found through NODE_PATH) are devDependencies installed with
# `npm ci` into bindings-node/node_modules (ignored), only when package-lock.json changed.
# `napi build` runs with the C toolchain of `make dist` (CROSS_HOST) in target/host-dist, shared
# with the Python wheel's build: the first build compiles the core once more, later ones only
# the addon crate.

TEST_SUITES += test-node
GENERATE += generate-node

NODE_DIR := $(ROOT)/bindings-node
NODE_BUILD := $(ROOT)/target/node
NODE_NAPI_OUT := $(NODE_BUILD)/napi
NODE_FRESH := $(NODE_BUILD)/fresh
NODE_STAMP := $(NODE_DIR)/node_modules/.install-stamp
NPM ?= npm
NODE ?= node
NPM_FLAGS := --no-audit --no-fund --loglevel=error
# The files `napi build` generates and the package ships (committed, checked fresh by a test).
NODE_GENERATED := native.js native.d.ts
# generated.js / generated.d.ts: written by lb-generate (make generate-bindings), committed.
NODE_PACKAGE_FILES := package.json README.md index.js index.mjs index.d.ts index.d.mts errors.js check.js logging.js \
	logging.d.ts generated.js generated.d.ts $(NODE_GENERATED)
# The @types/node a TypeScript user installs beside the package (the devDependency's version).
NODE_TYPES_VERSION = $(shell node -p "require('$(NODE_DIR)/package.json').devDependencies['@types/node']")

.PHONY: test-node generate-node node-tools node-build node-pack

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && $(NPM) ci $(NPM_FLAGS)
	touch $@

node-tools: $(NODE_STAMP)

# Builds the addon (debug) and generates native.js / native.d.ts into $(NODE_NAPI_OUT), with the
# C toolchain and glibc floor of `make dist` (CROSS_HOST, mk/dist.mk).
node-build: node-tools
	rm -rf $(NODE_NAPI_OUT) && mkdir -p $(NODE_NAPI_OUT)
	cd $(NODE_DIR) && $(CROSS_HOST) ./node_modules/.bin/napi build --platform --no-const-enum \
		--target-dir $(HOST_DIST_TARGET_DIR) --output-dir $(NODE_NAPI_OUT) \
		--js native.js --dts native.d.ts

generate-node: node-build
	for f in $(NODE_GENERATED); do cp $(NODE_NAPI_OUT)/$$f $(NODE_DIR)/$$f; done

# Packs the main package and this platform's package as `make dist` does (scripts/npm_packages.py).
node-pack: node-build
	rm -rf $(NODE_BUILD)/tarballs
	python3 $(ROOT)/scripts/npm_packages.py --out $(NODE_BUILD)/tarballs --addon $(HOST_TRIPLE)=$$(ls $(NODE_NAPI_OUT)/*.node)

test-node: node-pack service-binary
	rm -rf $(NODE_FRESH) && mkdir -p $(NODE_FRESH)
	echo '{"name": "license-backup-fresh-install", "private": true}' > $(NODE_FRESH)/package.json
	cd $(NODE_FRESH) && $(NPM) install $(NPM_FLAGS) --prefer-offline $(NODE_BUILD)/tarballs/*.tgz @types/node@$(NODE_TYPES_VERSION)
	cp -r $(NODE_DIR)/test $(NODE_FRESH)/test
	cp -r $(ROOT)/examples/node $(NODE_FRESH)/example
	cd $(NODE_FRESH) && LB_REPO=$(ROOT) LB_GENERATED_DIR=$(NODE_NAPI_OUT) NODE_PATH=$(NODE_DIR)/node_modules \
		$(NODE) --test --test-reporter=spec test/*.test.js
	cd $(NODE_FRESH) && EXAMPLE_DIR=$(NODE_BUILD)/example-run $(NODE) example/menu-backup.js
