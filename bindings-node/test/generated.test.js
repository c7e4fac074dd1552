'use strict'
// The generated native layer (native.js, native.d.ts) the package ships is what `napi build`
// generates from the Rust source now. `make test-node` builds into LB_GENERATED_DIR first.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')

const pkgDir = path.dirname(require.resolve('license-backup/package.json'))
const generated = process.env.LB_GENERATED_DIR

for (const file of ['native.d.ts', 'native.js']) {
  test(`the shipped ${file} is fresh`, { skip: generated ? false : 'LB_GENERATED_DIR is not set (run make test-node)' }, () => {
    const fresh = fs.readFileSync(path.join(generated, file), 'utf8')
    const shipped = fs.readFileSync(path.join(pkgDir, file), 'utf8')
    assert.ok(
      fresh === shipped,
      `bindings-node/${file} is stale: it differs from what napi build generates now; refresh it with \`make generate-node\` and commit it`,
    )
  })
}

test('the package ships its files and the licenses, and no addon (the notices go with the addon)', () => {
  const files = fs.readdirSync(pkgDir).sort()
  assert.deepEqual(files, [
    'LICENSE-APACHE', 'LICENSE-MIT', 'README.md',
    'check.js', 'errors.js', 'generated.d.ts', 'generated.js',
    'index.d.mts', 'index.d.ts', 'index.js', 'index.mjs', 'logging.d.ts', 'logging.js', 'native.d.ts', 'native.js', 'package.json',
  ])
  const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'))
  assert.equal(pkg.name, 'license-backup')
  assert.equal(pkg.main, 'index.js')
  assert.equal(pkg.types, 'index.d.ts')
  assert.equal(pkg.dependencies, undefined, 'the package has no runtime dependencies')
  assert.equal(pkg.devDependencies, undefined)
  assert.equal(pkg.scripts, undefined)
})

// The napi-rs layout: one platform package per napi target, at the main package's version.
const PLATFORM_SUFFIX = {
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'x86_64-unknown-linux-musl': 'linux-x64-musl',
  'aarch64-apple-darwin': 'darwin-arm64',
  'x86_64-apple-darwin': 'darwin-x64',
  'x86_64-pc-windows-gnu': 'win32-x64-msvc',
}

test('every platform is an optional dependency at the same version', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'))
  const expected = Object.fromEntries(
    pkg.napi.targets.map((t) => [`license-backup-${PLATFORM_SUFFIX[t]}`, pkg.version]),
  )
  assert.deepEqual(pkg.optionalDependencies, expected)
  assert.equal(Object.keys(expected).length, 6)
})

test('require() loads the addon of the platform package that matches this process', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'))
  require('license-backup')
  const loaded = Object.keys(require.cache).filter((f) => f.endsWith('.node'))
  assert.equal(loaded.length, 1, `addons loaded: ${loaded}`)
  // linux: -gnu or -musl; win32: -msvc (what native.js asks for in the official Node and Electron)
  const abi = process.platform === 'linux'
    ? (process.report.getReport().header.glibcVersionRuntime ? '-gnu' : '-musl')
    : process.platform === 'win32' ? '-msvc' : ''
  const suffix = `${process.platform}-${process.arch}${abi}`
  const platformPkg = `license-backup-${suffix}`
  assert.ok(loaded[0].includes(`${path.sep}node_modules${path.sep}${platformPkg}${path.sep}`), loaded[0])
  const platformJson = JSON.parse(fs.readFileSync(path.join(path.dirname(loaded[0]), 'package.json'), 'utf8'))
  assert.equal(platformJson.version, pkg.version)
  assert.deepEqual(platformJson.os, [process.platform])
  assert.deepEqual(platformJson.cpu, [process.arch])
  for (const f of ['LICENSE-MIT', 'LICENSE-APACHE', 'THIRD-PARTY-NOTICES.md']) {
    assert.ok(fs.existsSync(path.join(path.dirname(loaded[0]), f)), `${platformPkg} ships ${f}`)
  }
})
