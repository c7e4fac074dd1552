// Events per second into a Swift delegate, and the wait from emission to delivery.
//
//   license-backup-bench [--n LICENSES] [--repeat RUNS]
//
// Builds a store of N licenses (every tenth restricted) in a temporary folder, then backs it up
// RUNS times with ProgressInterval=1 (N PROGRESS + N/10 RESTRICTED_LICENSE + BEGIN + END
// events). Prints JSON lines {"name", "value", "unit"}, medians over the runs: deliveries per
// second between the first and the last delivery into the per-event delegate methods, and the
// end-to-end wall time of that backup; then, for a second backup per run whose delegate
// implements receive(_:), its deliveries per second and the median and p99 of
// emission-to-delivery (DispatchTime.now().uptimeNanoseconds minus the event's emittedNs);
// then, for a third backup per run consumed as `for await event in restorer.backupEvents(...)`
// in a task, the same two figures for the events sequence.
import Dispatch
import Foundation
import LicenseBackup

/// Stores the delivery time of each event, through the per-event delegate methods.
final class Deliveries: BackupRestoreDelegate, @unchecked Sendable {
    // Only the delivery thread writes, one event at a time; read after the operation ended.
    var delivered: [UInt64] = []

    init(capacity: Int) { delivered.reserveCapacity(capacity) }

    func stamp() { delivered.append(DispatchTime.now().uptimeNanoseconds) }
    func begin(_ operation: OperationKind) { stamp() }
    func progress(_ operation: OperationKind, done: UInt64, total: UInt64) { stamp() }
    func restrictedLicense(keyId: String, title: String?) { stamp() }
    func end(_ operation: OperationKind, result: Result<Summary, LicenseBackupError>) { stamp() }
}

// emitted-ns:begin
/// Stores, per event, the delivery time and the emission time, through `receive(_:)`.
final class Timestamps: BackupRestoreDelegate, @unchecked Sendable {
    // Only the delivery thread writes, one event at a time; read after the operation ended.
    var delivered: [UInt64] = []
    var emitted: [UInt64] = []

    init(capacity: Int) {
        delivered.reserveCapacity(capacity)
        emitted.reserveCapacity(capacity)
    }

    func receive(_ event: BackupRestoreEvent) throws {
        delivered.append(DispatchTime.now().uptimeNanoseconds)
        emitted.append(event.emittedNs)
    }
}
// emitted-ns:end

func argument(_ name: String, default value: Int) -> Int {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: name), i + 1 < args.count, let n = Int(args[i + 1]) else { return value }
    return n
}

func percentile(_ sorted: [UInt64], _ p: Double) -> UInt64 {
    sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

func emit(_ name: String, _ value: Double, _ unit: String) {
    print("{\"name\": \"\(name)\", \"value\": \(value), \"unit\": \"\(unit)\"}")
}

let n = argument("--n", default: 100_000)
let runs = argument("--repeat", default: 3)
let dir = FileManager.default.temporaryDirectory.appendingPathComponent("license-backup-bench-\(UUID().uuidString)")
try FileManager.default.createDirectory(at: dir.appendingPathComponent("backup"), withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: dir) }

let store = try LicenseStore(path: dir.appendingPathComponent("store.db").path)
for start in stride(from: 1, through: n, by: 10_000) {
    try store.addLicenses((start...min(n, start + 9_999)).map { i in
        NewLicense(
            keyId: "5a000000-0000-0000-0000-" + String(format: "%012x", i),
            contentKey: Data("content-key-\(i)".utf8),
            rights: Rights(backupAllowed: i % 10 != 0),
            issuer: "https://issuer.example",
            issuedAt: 1_700_000_000
        )
    })
}
let service = try EmbeddedService(path: dir.appendingPathComponent("service.db").path)
let restorer = try BackupRestorer(store: store, service: service)
try restorer.setBackupPath(dir.appendingPathComponent("backup").path)
try restorer.setProgressInterval(1)

/// Deliveries per second between the first and the last delivery.
func rate(_ delivered: [UInt64]) -> Double {
    Double(delivered.count - 1) / (Double(delivered[delivered.count - 1] - delivered[0]) / 1e9)
}

var rates: [Double] = []
var walls: [Double] = []
var receiveRates: [Double] = []
var p50s: [Double] = []
var p99s: [Double] = []
var streamRates: [Double] = []
var streamP50s: [Double] = []
var streamP99s: [Double] = []
for _ in 0..<runs {
    let delegate = Deliveries(capacity: n + n / 10 + 2)
    restorer.delegate = delegate
    let start = DispatchTime.now().uptimeNanoseconds
    _ = try await restorer.backupLicenses(overwrite: true)
    walls.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    rates.append(rate(delegate.delivered))
    // emitted-ns:begin
    let timed = Timestamps(capacity: n + n / 10 + 2)
    restorer.delegate = timed
    _ = try await restorer.backupLicenses(overwrite: true)
    receiveRates.append(rate(timed.delivered))
    let waits = zip(timed.delivered, timed.emitted).map { $0 - $1 }.sorted()
    p50s.append(Double(percentile(waits, 0.5)) / 1000)
    p99s.append(Double(percentile(waits, 0.99)) / 1000)
    // emitted-ns:end
    restorer.delegate = nil
    let consumed = Task { () async throws -> ([UInt64], [UInt64]) in
        var delivered: [UInt64] = []
        var emitted: [UInt64] = []
        delivered.reserveCapacity(n + n / 10 + 2)
        emitted.reserveCapacity(n + n / 10 + 2)
        let events = try restorer.backupEvents(overwrite: true)
        for await event in events {
            delivered.append(DispatchTime.now().uptimeNanoseconds)
            emitted.append(event.emittedNs)
        }
        _ = try await events.wait()
        return (delivered, emitted)
    }
    let (delivered, emitted) = try await consumed.value
    streamRates.append(rate(delivered))
    let streamWaits = zip(delivered, emitted).map { $0 - $1 }.sorted()
    streamP50s.append(Double(percentile(streamWaits, 0.5)) / 1000)
    streamP99s.append(Double(percentile(streamWaits, 0.99)) / 1000)
}
emit("swift_events_per_s", median(rates), "events/s")
emit("swift_backup_wall_s", median(walls), "s")
// emitted-ns:begin
emit("swift_receive_events_per_s", median(receiveRates), "events/s")
emit("swift_latency_p50_us", median(p50s), "us")
emit("swift_latency_p99_us", median(p99s), "us")
// emitted-ns:end
emit("swift_stream_events_per_s", median(streamRates), "events/s")
emit("swift_stream_latency_p50_us", median(streamP50s), "us")
emit("swift_stream_latency_p99_us", median(streamP99s), "us")
