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

test('the package ships its files and the addon, and nothing else', () => {
  const files = fs.readdirSync(pkgDir).sort()
  assert.deepEqual(
    files.filter((f) => !f.endsWith('.node')),
    ['README.md', 'check.js', 'generated.d.ts', 'generated.js', 'index.d.ts', 'index.js', 'native.d.ts', 'native.js', 'package.json'],
  )
  assert.equal(files.filter((f) => f.endsWith('.node')).length, 1)
  const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'))
  assert.equal(pkg.name, 'license-backup')
  assert.equal(pkg.main, 'index.js')
  assert.equal(pkg.types, 'index.d.ts')
  assert.equal(pkg.dependencies, undefined, 'the package has no runtime dependencies')
})
