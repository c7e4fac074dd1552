"""Backup end-to-end and event delivery from Python, for `make bench`.

`make bench` (core/examples/bench.rs) runs this script with the fixture it built:

    python bench_backup.py --store STORE.db --service SERVICE.db --out FOLDER --n 100000 --repeat 3

and merges the JSON lines it prints ({"name", "value", "unit"}) into its table, beside the same
backup made from Rust in the same run. When the `license_backup` package is not importable it
prints {"skip": reason} and exits 0.

Figures:
* python.backup_e2e.wall: median wall time of backup_licenses(overwrite=True, on_status=cb)
  then op.wait(), with the default ProgressInterval and a callback that counts events;
* python.events.rate / gap_p50 / gap_p99: a backup with ProgressInterval=1, the callback taking
  a monotonic timestamp per event; rate = deliveries per second between the first and the last
  delivery, gaps = time between consecutive deliveries. (Emission-to-delivery latency needs an
  emission timestamp the core does not expose; see docs/performance.md.)
"""

import argparse
import json
import statistics
import sys
import time


def emit(name, value, unit):
    print(json.dumps({"name": name, "value": value, "unit": unit}), flush=True)


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

    store = lb.LicenseStore(args.store)
    service = lb.EmbeddedService(args.service)
    restorer = lb.BackupRestorer(store, service)
    restorer.backup_path = args.out

    set_interval(restorer, 100)
    walls = []
    for _ in range(max(1, args.repeat)):
        seen = [0]

        def count(event):
            seen[0] += 1

        t0 = time.perf_counter()
        op = restorer.backup_licenses(overwrite=True, on_status=count)
        op.wait()
        walls.append(time.perf_counter() - t0)
    emit("python.backup_e2e.wall", statistics.median(walls), "s")

    set_interval(restorer, 1)
    times = []
    append, clock = times.append, time.perf_counter_ns

    def stamp(event):
        append(clock())

    op = restorer.backup_licenses(overwrite=True, on_status=stamp)
    op.wait()
    if len(times) >= 2:
        gaps = sorted((b - a) / 1000.0 for a, b in zip(times, times[1:]))
        span = (times[-1] - times[0]) / 1e9
        emit("python.events.count", len(times), "events")
        emit("python.events.rate", (len(times) - 1) / span, "events/s")
        emit("python.events.gap_p50", gaps[round((len(gaps) - 1) * 0.5)], "us")
        emit("python.events.gap_p99", gaps[round((len(gaps) - 1) * 0.99)], "us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
