'use strict'
// The package as TypeScript and ES module users get it, from the installed tarball: small
// consumer projects (consumer-usage.ts under each project's own imports) type-check with
// `tsc --noEmit` under TypeScript 5 and the current major (7), with `moduleResolution`
// `nodenext` and `bundler`, as ES modules and as CommonJS, with no `types` setting (TypeScript 7
// includes no @types package by itself: the package's reference to `node` must bring it); a
// declaration error is caught too (`skipLibCheck: false` in the first project of each compiler). Then the ESM and CommonJS entry
// points are imported for real: the same classes, and a backup through the ESM entry.

const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { test } = require('node:test')
const { lb } = require('./helpers.js')

// The folder where the tarball is installed (as node_modules/license-backup): consumer
// projects go inside it, so they resolve the package (and @types/node) as an application does.
const PKG_DIR = path.dirname(require.resolve('license-backup/package.json'))
const APP_DIR = path.resolve(PKG_DIR, '..', '..')
const USAGE = fs.readFileSync(path.join(__dirname, 'consumer-usage.ts'), 'utf8')

// The compilers: devDependencies of bindings-node (found through NODE_PATH).
const COMPILERS = {
  5: path.join(path.dirname(require.resolve('typescript/package.json')), 'bin', 'tsc'),
  7: path.join(path.dirname(require.resolve('typescript-7/package.json')), 'bin', 'tsc'),
}

const ESM_IMPORTS = `import * as lb from 'license-backup'
import lbDefault, { LicenseStore, LicenseBackupError, type Summary } from 'license-backup'
// The default export is the whole module.
lbDefault.BackupRestorer satisfies typeof lb.BackupRestorer
`
const CJS_IMPORTS = `import lb = require('license-backup')
import LicenseStore = lb.LicenseStore
import LicenseBackupError = lb.LicenseBackupError
type Summary = lb.Summary
`

// [name, package.json "type", file name, imports, compilerOptions]
const PROJECTS = [
  ['nodenext-esm', 'module', 'consumer.ts', ESM_IMPORTS, { module: 'nodenext', moduleResolution: 'nodenext' }],
  ['nodenext-cjs', 'commonjs', 'consumer.ts', CJS_IMPORTS, { module: 'nodenext', moduleResolution: 'nodenext' }],
  ['bundler-esm', 'module', 'consumer.ts', ESM_IMPORTS, { module: 'esnext', moduleResolution: 'bundler' }],
  ['bundler-cjs', 'commonjs', 'consumer.cts', CJS_IMPORTS, { module: 'preserve', moduleResolution: 'bundler' }],
]

function tsc(version, dir) {
  return spawnSync(process.execPath, [COMPILERS[version], '-p', dir], { encoding: 'utf8', timeout: 180_000 })
}

for (const version of Object.keys(COMPILERS)) {
  for (const [name, type, file, imports, options] of PROJECTS) {
    test(`TypeScript ${version}, ${name}: the installed package type-checks in a consumer project`, (t) => {
      const dir = fs.mkdtempSync(path.join(APP_DIR, `.ts-${version}-${name}-`))
      t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
      fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, private: true, type }))
      // The package's declaration files are checked themselves once per compiler (they are the
      // same in every project; @types/node's make each check slow).
      const first = name === PROJECTS[0][0]
      const compilerOptions = { strict: true, noEmit: true, target: 'es2022', lib: ['es2022'], skipLibCheck: !first, ...options }
      fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: [file] }, null, 2))
      fs.writeFileSync(path.join(dir, file), imports + '\n' + USAGE)
      const run = tsc(version, dir)
      assert.equal(run.status, 0, `tsc ${version} failed:\n${run.stdout}${run.stderr}`)

      // The check can fail: a wrong type in the same project is reported.
      if (!first) return
      fs.appendFileSync(path.join(dir, file), "\nconst wrong: number = LicenseStore.open('/tmp/x.db')\n")
      const broken = tsc(version, dir)
      assert.notEqual(broken.status, 0, 'tsc accepted a wrong type')
      assert.match(broken.stdout, /LicenseStore.*not assignable to type 'number'/)
    })
  }
}

test('the package declares @types/node as it needs it: a reference directive and an optional peer dependency', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(PKG_DIR, 'package.json'), 'utf8'))
  assert.equal(pkg.peerDependencies['@types/node'], '>=18')
  assert.deepEqual(pkg.peerDependenciesMeta['@types/node'], { optional: true })
  for (const file of ['index.d.ts', 'index.d.mts', 'generated.d.ts']) {
    assert.match(fs.readFileSync(path.join(PKG_DIR, file), 'utf8'), /^\/\/\/ <reference types="node" \/>$/m, file)
  }
})

/** Runs `source` as a file named `file` in the application folder; returns its stdout. */
function runIn(t, file, source) {
  const script = path.join(APP_DIR, file)
  fs.writeFileSync(script, source)
  t.after(() => fs.rmSync(script, { force: true }))
  const child = spawnSync(process.execPath, [script], { cwd: APP_DIR, encoding: 'utf8', timeout: 60_000 })
  assert.equal(child.status, 0, child.stderr)
  return child.stdout
}

test('the ES module entry and the CommonJS entry are one package: same classes, a backup through ESM', (t) => {
  const out = runIn(
    t,
    'esm-check.mjs',
    `
    import { createRequire } from 'node:module'
    import fs from 'node:fs'
    import os from 'node:os'
    import path from 'node:path'
    import lbDefault, * as esm from 'license-backup'
    import { LicenseStore, EmbeddedService, BackupRestorer, LicenseBackupError } from 'license-backup'
    const cjs = createRequire(import.meta.url)('license-backup')
    const names = Object.keys(cjs).sort()
    const esmNames = Object.keys(esm).filter((n) => n !== 'default').sort()
    if (JSON.stringify(names) !== JSON.stringify(esmNames)) throw new Error('exports differ: ' + esmNames + ' / ' + names)
    for (const n of names) if (esm[n] !== cjs[n]) throw new Error(n + ' is another object in ESM')
    if (lbDefault !== cjs) throw new Error('the default export is not the CommonJS module')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lb-esm-'))
    try {
      const store = LicenseStore.open(path.join(dir, 'device.db'))
      const service = EmbeddedService.open(path.join(dir, 'service.db'))
      store.addLicense({ keyId: '0f8fad5b-d9cb-469f-a165-70867728950e', contentKey: Buffer.from('k'), rights: {}, issuer: 'i', issuedAt: 1 })
      const restorer = new BackupRestorer(store, service)
      restorer.backupPath = dir
      const summary = await restorer.backupLicenses()
      const err = await restorer.backupLicenses().catch((e) => e)
      // An error thrown by the addon is an instance of the class both entries export.
      console.log(summary.licenses, err instanceof LicenseBackupError, err instanceof cjs.LicenseBackupError, err.code)
      restorer.close(); store.close(); service.close()
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  `,
  )
  assert.equal(out.trim(), '1 true true BACKUP_EXISTS')
  assert.equal(
    runIn(t, 'cjs-check.cjs', "const lb = require('license-backup'); console.log(typeof lb.LicenseStore.open, Object.keys(lb).length)").trim(),
    `function ${Object.keys(lb).length}`,
  )
})

test('the exports map: ESM and CommonJS entries with their types first, package.json reachable, nothing else', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(PKG_DIR, 'package.json'), 'utf8'))
  assert.deepEqual(pkg.exports, {
    '.': {
      import: { types: './index.d.mts', default: './index.mjs' },
      require: { types: './index.d.ts', default: './index.js' },
    },
    './package.json': './package.json',
  })
  // Internal modules are not part of the API.
  assert.throws(() => require('license-backup/check.js'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' })
})
