'use strict';
// Backup end-to-end and event delivery from Node, for `make bench`.
//
// `make bench` (core/examples/bench.rs) runs this script with the fixture it built:
//
//   node bench_backup.js --store STORE.db --service SERVICE.db --out FOLDER --n 100000 --repeat 3
//
// and merges the JSON lines it prints ({"name", "value", "unit"}) into its table, beside the
// same backup made from Rust in the same run. When the `license-backup` package cannot be
// loaded it prints {"skip": reason} and exits 0.
//
// Figures: node.backup_e2e.wall (median wall time of `await restorer.backupLicenses({overwrite:
// true})` with the default ProgressInterval and a 'progress' listener that counts), and
// node.events.rate / gap_p50 / gap_p99 (a backup with ProgressInterval=1; every listener takes
// performance.now(); rate = deliveries per second between the first and the last delivery,
// gaps = time between consecutive deliveries on the main thread).

const { performance } = require('node:perf_hooks');

function emit(name, value, unit) {
  process.stdout.write(JSON.stringify({ name, value, unit }) + '\n');
}

function parseArgs(argv) {
  const out = { repeat: 3 };
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  out.n = Number(out.n);
  out.repeat = Math.max(1, Number(out.repeat));
  return out;
}

function load() {
  const errors = [];
  for (const name of ['license-backup', '..']) {
    try {
      return require(name);
    } catch (e) {
      errors.push(`${name}: ${e.message.split('\n')[0]}`);
    }
  }
  process.stdout.write(JSON.stringify({ skip: `license-backup cannot be loaded (${errors.join('; ')})` }) + '\n');
  return null;
}

function setInterval(restorer, n) {
  if (typeof restorer.setProperty === 'function') restorer.setProperty('ProgressInterval', n);
  else restorer.progressInterval = n;
}

// Every event kind a listener may be registered for, so each delivery is counted.
const KINDS = ['begin', 'progress', 'restrictedLicense', 'end'];

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const lb = load();
  if (!lb) return;
  const { LicenseStore, EmbeddedService, BackupRestorer } = lb;
  const store = await LicenseStore.open(args.store);
  const service = await EmbeddedService.open(args.service);
  const restorer = new BackupRestorer(store, service);
  restorer.backupPath = args.out;

  setInterval(restorer, 100);
  let seen = 0;
  const count = () => {
    seen += 1;
  };
  restorer.on('progress', count);
  const walls = [];
  for (let r = 0; r < args.repeat; r++) {
    const t0 = performance.now();
    await restorer.backupLicenses({ overwrite: true });
    walls.push((performance.now() - t0) / 1000);
  }
  restorer.off('progress', count);
  walls.sort((a, b) => a - b);
  emit('node.backup_e2e.wall', walls[Math.floor(walls.length / 2)], 's');

  setInterval(restorer, 1);
  const times = new Float64Array(Math.max(16, Math.ceil(args.n * 1.2) + 16));
  let k = 0;
  const stamp = () => {
    if (k < times.length) times[k++] = performance.now();
  };
  for (const kind of KINDS) restorer.on(kind, stamp);
  await restorer.backupLicenses({ overwrite: true });
  for (const kind of KINDS) restorer.off(kind, stamp);
  if (k >= 2) {
    const gaps = new Float64Array(k - 1);
    for (let i = 1; i < k; i++) gaps[i - 1] = (times[i] - times[i - 1]) * 1000;
    gaps.sort();
    const span = (times[k - 1] - times[0]) / 1000;
    emit('node.events.count', k, 'events');
    emit('node.events.rate', (k - 1) / span, 'events/s');
    emit('node.events.gap_p50', gaps[Math.round((gaps.length - 1) * 0.5)], 'us');
    emit('node.events.gap_p99', gaps[Math.round((gaps.length - 1) * 0.99)], 'us');
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
