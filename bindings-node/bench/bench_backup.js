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
// true})` with the default ProgressInterval and a 'progress' listener that counts), and, from a
// backup with ProgressInterval=1 where every listener takes process.hrtime.bigint():
// node.events.rate (deliveries per second between the first and the last delivery),
// node.events.latency_p50 / latency_p99 (delivery time minus the event's emittedNs, in
// microseconds: how long an event waited between the core emitting it and the listener
// running), and node.events.gap_p50 / gap_p99 (time between consecutive deliveries).

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
  const cap = Math.max(16, Math.ceil(args.n * 1.2) + 16);
  const delivered = new BigInt64Array(cap);
  const emitted = new BigInt64Array(cap);
  let k = 0;
  const stamp = (e) => {
    if (k < cap) {
      delivered[k] = process.hrtime.bigint();
      emitted[k++] = e.emittedNs ?? 0n; // 0: a package without emittedNs
    }
  };
  for (const kind of KINDS) restorer.on(kind, stamp);
  await restorer.backupLicenses({ overwrite: true });
  for (const kind of KINDS) restorer.off(kind, stamp);
  if (k >= 2) {
    const us = (ns) => Number(ns) / 1000;
    const pct = (xs, p) => xs[Math.round((xs.length - 1) * p)];
    const latency = new Float64Array(k);
    for (let i = 0; i < k; i++) latency[i] = us(delivered[i] - emitted[i]);
    latency.sort();
    const gaps = new Float64Array(k - 1);
    for (let i = 1; i < k; i++) gaps[i - 1] = us(delivered[i] - delivered[i - 1]);
    gaps.sort();
    const span = us(delivered[k - 1] - delivered[0]) / 1e6;
    emit('node.events.count', k, 'events');
    emit('node.events.rate', (k - 1) / span, 'events/s');
    if (emitted[0] !== 0n) {
      emit('node.events.latency_p50', pct(latency, 0.5), 'us');
      emit('node.events.latency_p99', pct(latency, 0.99), 'us');
    }
    emit('node.events.gap_p50', pct(gaps, 0.5), 'us');
    emit('node.events.gap_p99', pct(gaps, 0.99), 'us');
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
