'use strict'
// How an Electron main process uses license-backup: the "Back up licenses…" and "Restore
// licenses…" menu commands of a media player. Plain Node runs it as it is (`make test-node`
// does); in Electron, `onMenuCommand` would be wired to a Menu item's `click` and `ui` would
// send IPC messages to the renderer (webContents.send) instead of printing.
//
//   node menu-backup.js            (EXAMPLE_DIR chooses the working folder, default ./demo)

const fs = require('node:fs')
const path = require('node:path')
const { LicenseStore, EmbeddedService, BackupRestorer, LicenseBackupError } = require('license-backup')

const root = path.resolve(process.env.EXAMPLE_DIR ?? 'demo')
fs.rmSync(root, { recursive: true, force: true })
const usbStick = path.join(root, 'usb-stick')
fs.mkdirSync(usbStick, { recursive: true })

// What the renderer would show; here, the console.
const ui = {
  status: (text) => console.log(`[status] ${text}`),
  progress: (done, total) => console.log(`[progress] ${'#'.repeat(Math.round((20 * done) / total)).padEnd(20, '.')} ${done}/${total}`),
  alert: (text) => console.log(`[dialog] ${text}`),
}

const TITLES = ['Blue in Green', 'Clair de lune', 'Hallelujah', 'Heroes', 'Hurt', 'Jolene', 'Karma Police', 'Respect']

// The player's own library: licenses it acquired, and its catalog of protected files.
function seedLibrary(store) {
  const licenses = TITLES.map((title, i) => ({
    keyId: `0f8fad5b-d9cb-469f-a165-${String(i + 1).padStart(12, '0')}`,
    contentKey: Buffer.from(`content key of ${title}`),
    rights: { play: true, burn: true, transfer: true, backupAllowed: i % 3 !== 2 },
    issuer: 'https://licenses.example.com',
    issuedAt: 1_700_000_000 + i,
  }))
  store.addLicenses(licenses)
  licenses.forEach((l, i) => store.setCatalogEntry(l.keyId, { title: TITLES[i], artist: 'Various' }))
}

// One restorer per window or app; listeners are attached once and stay.
function wireStatus(restorer) {
  const restricted = []
  restorer.on('begin', ({ operation }) => ui.status(`${operation} started`))
  restorer.on('progress', ({ done, total }) => ui.progress(done, total))
  restorer.on('restrictedLicense', ({ keyId, title }) => restricted.push(title ?? `unknown title (${keyId})`))
  restorer.on('connecting', () => ui.status('contacting the license service…'))
  restorer.on('disconnecting', () => ui.status('the license service answered'))
  restorer.on('refused', ({ message, url }) => ui.alert(`The license service refused: ${message}. See ${url}`))
  restorer.on('end', ({ operation, error }) => ui.status(`${operation} ${error ? `failed (${error.code})` : 'finished'}`))
  return restricted
}

// The menu command handler: async, so the main process stays responsive while the core works
// on its own thread; the "Cancel" button of the progress window aborts through the signal.
async function onMenuCommand(command, { restorer, restricted, cancel }) {
  try {
    if (command === 'backup') {
      restricted.length = 0
      const summary = await restorer.backupLicenses({ overwrite: true, signal: cancel.signal })
      ui.alert(`Backed up ${summary.licenses} licenses (${summary.bytes} bytes) to ${restorer.backupPath}.`)
      if (restricted.length > 0) {
        ui.alert(`These titles may not be backed up by their owners:\n${restricted.map((t) => `  • ${t}`).join('\n')}`)
      }
      return summary
    }
    const quota = restorer.restoreQuota()
    ui.status(`this archive can still be restored onto ${quota.restoresRemaining} new device(s)`)
    const summary = await restorer.restoreLicenses({ signal: cancel.signal })
    ui.alert(`Restored ${summary.licenses} licenses (${summary.skipped} already here).`)
    return summary
  } catch (err) {
    if (err instanceof LicenseBackupError && err.code === 'CANCELLED') ui.alert('Cancelled.')
    else if (err instanceof LicenseBackupError) ui.alert(`Could not ${command}: ${err.message} [${err.code} ${err.errno}]`)
    else throw err
    return null
  }
}

async function main() {
  const service = EmbeddedService.open(path.join(root, 'license-service.db'))

  // This computer: back up to the USB stick.
  const laptop = LicenseStore.open(path.join(root, 'laptop.db'))
  seedLibrary(laptop)
  const laptopRestorer = new BackupRestorer(laptop, service)
  laptopRestorer.backupPath = usbStick
  laptopRestorer.progressInterval = 2
  const laptopRestricted = wireStatus(laptopRestorer)
  const backup = await onMenuCommand('backup', { restorer: laptopRestorer, restricted: laptopRestricted, cancel: new AbortController() })

  // The new computer: restore from the USB stick.
  const desktop = LicenseStore.open(path.join(root, 'desktop.db'))
  const desktopRestorer = new BackupRestorer(desktop, service)
  desktopRestorer.restorePath = usbStick
  const desktopRestricted = wireStatus(desktopRestorer)
  const restore = await onMenuCommand('restore', { restorer: desktopRestorer, restricted: desktopRestricted, cancel: new AbortController() })

  // On quit (app.on('will-quit')): release native resources explicitly.
  for (const closable of [laptopRestorer, desktopRestorer, laptop, desktop, service]) closable.close()

  // The example checks itself, so `make test-node` fails if the flow breaks.
  const restrictedTitles = TITLES.filter((_, i) => i % 3 === 2)
  const ok = backup?.licenses === TITLES.length - restrictedTitles.length &&
    backup.restricted === restrictedTitles.length &&
    restrictedTitles.every((t) => laptopRestricted.includes(t)) &&
    restore?.licenses === backup.licenses
  if (!ok) {
    console.error('example: unexpected result', { backup, restore, laptopRestricted })
    process.exitCode = 1
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
