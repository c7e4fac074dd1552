# Node package (bindings-node/): napi-rs addon + JavaScript wrapper, published as `license-backup`.
#
#   make test-node      build the addon with the napi CLI, `npm pack` it, install the tarball in a
#                       fresh folder and run `node --test` there; then the Electron-style example
#   make generate-node  rewrite the generated native.js / native.d.ts (committed)
#
# The napi CLI, TypeScript (for the declaration check) and fast-check (the property-based tests,
# found through NODE_PATH) are devDependencies installed with
# `npm ci` into bindings-node/node_modules (ignored), only when package-lock.json changed.
# `napi build` always passes --target, so its artifacts live in target/<triple>/debug (beside
# cargo's own target/debug): the first build compiles the core once more, later ones only the
# addon crate.

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
NODE_PACKAGE_FILES := package.json README.md index.js index.d.ts check.js generated.js generated.d.ts $(NODE_GENERATED)

.PHONY: test-node generate-node node-tools node-build node-pack

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && $(NPM) ci $(NPM_FLAGS)
	touch $@

node-tools: $(NODE_STAMP)

# Builds the addon (debug) and generates native.js / native.d.ts into $(NODE_NAPI_OUT).
node-build: node-tools
	rm -rf $(NODE_NAPI_OUT) && mkdir -p $(NODE_NAPI_OUT)
	cd $(NODE_DIR) && ./node_modules/.bin/napi build --platform --no-const-enum \
		--target-dir $(ROOT)/target --output-dir $(NODE_NAPI_OUT) \
		--js native.js --dts native.d.ts

generate-node: node-build
	for f in $(NODE_GENERATED); do cp $(NODE_NAPI_OUT)/$$f $(NODE_DIR)/$$f; done

# Packs the committed package files plus the freshly built addon, as `npm publish` would.
node-pack: node-build
	rm -rf $(NODE_BUILD)/package $(NODE_BUILD)/license-backup-*.tgz && mkdir -p $(NODE_BUILD)/package
	cd $(NODE_DIR) && cp $(NODE_PACKAGE_FILES) $(NODE_BUILD)/package/
	cp $(NODE_NAPI_OUT)/*.node $(NODE_BUILD)/package/
	cd $(NODE_BUILD)/package && $(NPM) pack $(NPM_FLAGS) --pack-destination $(NODE_BUILD) >/dev/null

test-node: node-pack
	cd $(NODE_DIR) && ./node_modules/.bin/tsc -p test/tsconfig.json
	rm -rf $(NODE_FRESH) && mkdir -p $(NODE_FRESH)
	echo '{"name": "license-backup-fresh-install", "private": true}' > $(NODE_FRESH)/package.json
	cd $(NODE_FRESH) && $(NPM) install $(NPM_FLAGS) --offline $(NODE_BUILD)/license-backup-*.tgz
	cp -r $(NODE_DIR)/test $(NODE_FRESH)/test
	cp -r $(ROOT)/examples/node $(NODE_FRESH)/example
	cd $(NODE_FRESH) && LB_REPO=$(ROOT) LB_GENERATED_DIR=$(NODE_NAPI_OUT) NODE_PATH=$(NODE_DIR)/node_modules \
		$(NODE) --test --test-reporter=spec test/*.test.js
	cd $(NODE_FRESH) && EXAMPLE_DIR=$(NODE_BUILD)/example-run $(NODE) example/menu-backup.js
