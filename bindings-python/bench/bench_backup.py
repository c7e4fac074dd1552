"""Backup end-to-end and event delivery from Python, for `make bench`.

`make bench` (core/examples/bench.rs) runs this script with the fixture it built:

    python bench_backup.py --store STORE.db --service SERVICE.db --out FOLDER --n 100000 --repeat 3

and merges the JSON lines it prints ({"name", "value", "unit"}) into its table, beside the same
backup made from Rust in the same run. When the `license_backup` package is not importable it
prints {"skip": reason} and exits 0.

Figures:
* python.backup_e2e.wall: median wall time of backup_licenses(overwrite=True, on_status=cb)
  then op.wait(), with ProgressInterval 100 (as the Rust figure) and a callback that counts
  events, each run on a store and service opened afresh (the Rust figure runs each in a new
  process);
* python.events.rate / latency_p50 / latency_p99: a backup with ProgressInterval=1, the
  callback recording, for every event, its `emitted_ns` and `time.monotonic_ns()` at delivery
  (the same clock); rate = deliveries per second between the first and the last delivery,
  latency = delivery time minus emission time, in microseconds (median, 99th percentile).
"""

import argparse
import json
import statistics
import sys
import time


def emit(name, value, unit):
    print(json.dumps({"name": name, "value": value, "unit": unit}), flush=True)


def percentile(ordered, p):
    """The p-th quantile of a sorted list (nearest rank, as the Rust harness computes it)."""
    return ordered[round((len(ordered) - 1) * p)]


def set_interval(restorer, n):
    if hasattr(restorer, "set_property"):
        restorer.set_property("ProgressInterval", n)
    else:
        restorer.progress_interval = n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    try:
        import license_backup as lb
    except ImportError as e:
        print(json.dumps({"skip": f"license_backup is not importable: {e}"}), flush=True)
        return 0

    def open_restorer(interval):
        restorer = lb.BackupRestorer(lb.LicenseStore(args.store), lb.EmbeddedService(args.service))
        restorer.backup_path = args.out
        set_interval(restorer, interval)
        return restorer

    walls = []
    for _ in range(max(1, args.repeat)):
        # A store and service opened afresh for each run, as the Rust figure's child process
        # does, so that no run starts with what an earlier one left in memory.
        restorer = open_restorer(100)
        seen = [0]

        def count(event):
            seen[0] += 1

        t0 = time.perf_counter()
        op = restorer.backup_licenses(overwrite=True, on_status=count)
        op.wait()
        walls.append(time.perf_counter() - t0)
        restorer.store.close()
    emit("python.backup_e2e.wall", statistics.median(walls), "s")

    restorer = open_restorer(1)
    emitted, delivered = [], []
    append_emitted, append_delivered, clock = emitted.append, delivered.append, time.monotonic_ns

    def stamp(event):
        append_delivered(clock())
        append_emitted(event.emitted_ns)

    op = restorer.backup_licenses(overwrite=True, on_status=stamp)
    op.wait()
    if len(delivered) >= 2:
        latencies = sorted((d - e) / 1000.0 for e, d in zip(emitted, delivered))
        span = (delivered[-1] - delivered[0]) / 1e9
        emit("python.events.count", len(delivered), "events")
        emit("python.events.rate", (len(delivered) - 1) / span, "events/s")
        emit("python.events.latency_p50", percentile(latencies, 0.5), "us")
        emit("python.events.latency_p99", percentile(latencies, 0.99), "us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
