import Foundation
import XCTest
@testable import LicenseBackup
#if canImport(Glibc)
import Glibc
#endif

/// Emission times, and events delivered in batches: each one still reaches the delegate on its
/// own, in order, and a cancel or a throw inside a batch stops delivery right there.
final class DeliveryTests: XCTestCase {
    /// Records each event's emission time and delivery time, then hands it to `recorder`.
    final class Timing: BackupRestoreDelegate, @unchecked Sendable {
        let recorder = Recorder()
        /// (emitted, delivered) per event, in delivery order.
        let times = Locked<[(emitted: UInt64, delivered: UInt64)]>([])

        func receive(_ event: BackupRestoreEvent) throws {
            let delivered = DispatchTime.now().uptimeNanoseconds
            times.update { $0.append((event.emittedNs, delivered)) }
            try recorder.receive(event)
        }
    }

    /// A device with `count` licenses (every tenth restricted), ProgressInterval 1.
    func busyDevice(_ world: World, count: Int = 300) throws -> BackupRestorer {
        let (_, restorer) = try world.device("A", count: count, restricted: Set(stride(from: 10, through: count, by: 10)))
        try restorer.setProgressInterval(1)
        return restorer
    }

    func testEmissionTimesAreNonDecreasingAndNotAfterDelivery() async throws {
        let world = try World()
        let a = try busyDevice(world)
        let timing = Timing()
        a.delegate = timing
        let before = DispatchTime.now().uptimeNanoseconds
        let summary = try await a.backupLicenses()
        let after = DispatchTime.now().uptimeNanoseconds
        XCTAssertEqual(summary.licenses, 270)
        let times = timing.times.get()
        // BEGIN, 300 PROGRESS, 30 RESTRICTED_LICENSE, END: every one seen once by receive(_:),
        // and dispatched to the per-event methods.
        XCTAssertEqual(times.count, 332)
        XCTAssertEqual(timing.recorder.recorded.count, 332)
        XCTAssertEqual(timing.recorder.recorded.last?["event"], "end")
        for (i, t) in times.enumerated() {
            XCTAssertLessThanOrEqual(t.emitted, t.delivered, "event \(i + 1) delivered before it was emitted")
            XCTAssertGreaterThanOrEqual(t.emitted, before, "event \(i + 1) emitted before the call")
            XCTAssertLessThanOrEqual(t.delivered, after)
            if i > 0 {
                XCTAssertLessThanOrEqual(times[i - 1].emitted, t.emitted, "emission times decrease at event \(i + 1)")
                XCTAssertLessThanOrEqual(times[i - 1].delivered, t.delivered)
            }
        }
    }

    /// `emittedNs` is on the clock of `DispatchTime.now().uptimeNanoseconds`; on Linux that is
    /// CLOCK_MONOTONIC (not CLOCK_BOOTTIME, which would also count suspended time).
    func testDispatchTimeReadsTheEngineClock() throws {
        #if canImport(Glibc)
        func monotonic() -> UInt64 {
            var ts = timespec()
            XCTAssertEqual(clock_gettime(CLOCK_MONOTONIC, &ts), 0)
            return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        }
        for _ in 0..<100 {
            let low = monotonic()
            let dispatch = DispatchTime.now().uptimeNanoseconds
            let high = monotonic()
            XCTAssertLessThanOrEqual(low, dispatch)
            XCTAssertLessThanOrEqual(dispatch, high)
        }
        #else
        throw XCTSkip("checked on Linux; on Apple platforms both are mach_absolute_time")
        #endif
    }

    func testACancelInsideABatchStopsRightThere() async throws {
        for n in [2, 17, 150] {
            let world = try World()
            let a = try busyDevice(world)
            let recorder = Recorder()
            recorder.onEvent.set { [weak a] k in if k == n { a?.cancelLicenseBackup() } }
            a.delegate = recorder
            await assertThrowsAsync(.cancelled) { try await a.backupLicenses() }
            let events = recorder.recorded
            XCTAssertEqual(events.count, n + 1, "n = \(n): the first \(n) events, then END")
            XCTAssertEqual(events.last?["event"], "end")
            XCTAssertEqual(events.last?["error"], "CANCELLED")
        }
    }

    func testAThrowInsideABatchStopsRightThere() async throws {
        for n in [3, 40, 200] {
            let world = try World()
            let a = try busyDevice(world)
            let recorder = Recorder()
            recorder.onEvent.set { k in if k == n { throw DelegateThrew(event: k) } }
            a.delegate = recorder
            let error = await assertThrowsAsync(.callbackFailed) { try await a.backupLicenses() }
            XCTAssertEqual(error?.underlyingError as? DelegateThrew, DelegateThrew(event: n))
            let events = recorder.recorded
            XCTAssertEqual(events.count, n + 1, "n = \(n): the first \(n) events, then END")
            XCTAssertEqual(events.last?["error"], "CALLBACK_FAILED")
            XCTAssertEqual(recorder.endResults.get().count, 1, "exactly one END")
        }
    }

    func testEventsInOrderWithNoGapOrRepeat() async throws {
        let world = try World()
        let a = try busyDevice(world, count: 1000)
        let recorder = Recorder()
        a.delegate = recorder
        _ = try await a.backupLicenses()
        let progress = recorder.recorded.filter { $0["event"] == AnyHashable("progress") }.compactMap { $0["done"] as? Int }
        XCTAssertEqual(progress, Array(1...1000))
        let restricted = recorder.recorded.compactMap { $0["key_id"] as? String }
        XCTAssertEqual(restricted, stride(from: 10, through: 1000, by: 10).map { generatedKeyId($0) })
    }
}

/// The packed form's reader: what the uniffi crate's `pack_event` writes reads back, and bytes
/// that are not a packed event read as `nil` (never a trap or an out-of-bounds read).
final class PackedFormTests: XCTestCase {
    private func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    private func unpackAll(_ bytes: [UInt8]) -> [BackupRestoreEvent]? {
        bytes.withUnsafeBytes { raw in
            var reader = PackedReader(raw)
            var out: [BackupRestoreEvent] = []
            while !reader.isAtEnd {
                guard let event = BackupRestoreEvent.unpack(&reader) else { return nil }
                out.append(event)
            }
            return out
        }
    }

    func testPackedEventsReadBack() throws {
        let title = "Caf\u{e9} \u{1F3B5}"
        var bytes: [UInt8] = []
        func text(_ s: String) { bytes += le(UInt32(s.utf8.count)); bytes += Array(s.utf8) }
        // PROGRESS (index 1): emittedNs, operation (restore = 1), done, total.
        bytes += [1]; bytes += le(UInt64(42)); bytes += [1]; bytes += le(UInt64(7)); bytes += le(UInt64(9))
        // RESTRICTED_LICENSE (index 2): emittedNs, key ID, title present.
        bytes += [2]; bytes += le(UInt64(43)); text("abc"); bytes += [1]; text(title)
        // REFUSED (index 5): emittedNs, code, message, url.
        bytes += [5]; bytes += le(UInt64(44)); bytes += le(UInt32(401)); text("no"); text("")
        let events = try XCTUnwrap(unpackAll(bytes))
        XCTAssertEqual(events.map(\.name), ["progress", "restricted_license", "refused"])
        XCTAssertEqual(events.map(\.emittedNs), [42, 43, 44])
        guard case .progress(.restore, 7, 9) = events[0].kind else { return XCTFail("\(events[0].kind)") }
        guard case .restrictedLicense("abc", title?) = events[1].kind else { return XCTFail("\(events[1].kind)") }
        guard case .refused(let code, "no", "") = events[2].kind else { return XCTFail("\(events[2].kind)") }
        XCTAssertEqual(code.number, 401)
    }

    func testBytesThatAreNotPackedEventsReadAsNil() {
        var progress: [UInt8] = [1]
        progress += le(UInt64(42)); progress += [0]; progress += le(UInt64(7)); progress += le(UInt64(9))
        XCTAssertNotNil(unpackAll(progress))
        for cut in 0..<progress.count {
            XCTAssertNil(unpackAll(Array(progress[..<cut]) + (cut == 0 ? [1] : [])), "truncated at \(cut)")
        }
        let ns = le(UInt64(1))
        XCTAssertNil(unpackAll([6] + ns), "END has no packed form")
        XCTAssertNil(unpackAll([200] + ns), "unknown kind")
        XCTAssertNil(unpackAll([0] + ns + [9]), "unknown operation")
        let zero = le(UInt32(0))
        XCTAssertNil(unpackAll([5] + ns + le(UInt32(99_999)) + zero + zero), "unknown code")
        XCTAssertNil(unpackAll([2] + ns + le(UInt32.max) + [0]), "a length past the end")
    }
}
