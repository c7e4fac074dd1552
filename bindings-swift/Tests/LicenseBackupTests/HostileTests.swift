import Foundation
import XCTest
@testable import LicenseBackup

/// Hostile delegates (docs/reliability.md, section 5): delegates that block for a while, call the
/// store and the restorer from inside an event, cancel the operation, or wait on it. Every wait
/// is bounded, so a deadlock fails the test instead of hanging the suite.
final class HostileTests: XCTestCase {
    /// Far below the store's 10 s busy timeout: a lock stall fails instead of passing slowly.
    let reentryLimit: TimeInterval = 3

    func testDelegateThatBlocksForAWhile() async throws {
        let world = try World()
        let (_, a) = try world.device("A", count: 8)
        try a.setProgressInterval(1)
        let recorder = Recorder()
        // Events: 1 begin, 2...9 progress, 10 end. Block on begin, two progress events and end.
        recorder.onEvent.set { n in if [1, 4, 7, 10].contains(n) { usleep(150_000) } }
        a.delegate = recorder
        let started = Date()
        let summary = try await a.backupLicenses()
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.6)
        XCTAssertEqual(summary.licenses, 8)
        XCTAssertEqual(recorder.recorded.map { $0["event"] }, ["begin"] + Array(repeating: "progress", count: 8) + ["end"])
        XCTAssertEqual(recorder.recorded.compactMap { $0["done"] as? Int }, Array(1...8))
        XCTAssertEqual(recorder.recorded.last?["error"], AnyHashable(NSNull()))
    }

    func testStoreAndRestorerCallsFromInsideTheDelegate() async throws {
        for kind in ["backup", "restore", "restore-individualize"] {
            let world = try World()
            let (storeA, a) = try world.device("A", count: 5)
            _ = try await a.backupLicenses()  // an archive for restoreQuota (and for the restore)
            let (store, restorer) = kind == "backup" ? (storeA, a) : try world.device("B")
            try restorer.setProgressInterval(1)
            let before = try store.licenseCount()
            struct Call { let event: String; let listed: Int; let count: UInt64; let quota: Quota; let seconds: TimeInterval }
            let calls = Locked<[Call]>([])
            let errors = Locked<[String]>([])
            let recorder = Recorder()
            recorder.onEvent.set { [weak recorder] n in
                let event = (recorder?.recorded.last?["event"] as? String) ?? "?"
                do {
                    let started = Date()
                    let listed = try store.listLicenses().count
                    let count = try store.licenseCount()
                    try store.addLicense(generatedLicense(n, prefix: "7b"))
                    try store.setCatalogEntry(CatalogEntry(title: "added in \(event)"), keyId: generatedKeyId(n, prefix: "7b"))
                    let quota = try restorer.restoreQuota()
                    calls.update { $0.append(Call(event: event, listed: listed, count: count, quota: quota, seconds: Date().timeIntervalSince(started))) }
                } catch {
                    errors.update { $0.append("\(event): \(error)") }
                }
            }
            restorer.delegate = recorder
            let summary = kind == "backup"
                ? try await restorer.backupLicenses(overwrite: true)
                : try await restorer.restoreLicenses(individualize: kind == "restore-individualize")
            XCTAssertEqual(errors.get(), [], kind)
            let made = calls.get()
            XCTAssertEqual(made.last?.event, "end", kind)
            // A backup reads its snapshot after BEGIN returns: the license added there is in it.
            XCTAssertEqual(summary.licenses, kind == "backup" ? 6 : 5, kind)
            for (i, c) in made.enumerated() {
                XCTAssertLessThan(c.seconds, reentryLimit, "\(kind) \(c.event)")
                XCTAssertEqual(UInt64(c.listed), c.count, kind)
                XCTAssertTrue(kind == "backup" ? [5, 6].contains(c.quota.licenses) : c.quota.licenses == 5, "\(kind) \(c.quota)")
                if kind == "backup" { XCTAssertEqual(c.count, before + UInt64(i), kind) }
            }
            XCTAssertEqual(try store.licenseCount(), before + UInt64(made.count) + (kind == "backup" ? 0 : 5), kind)
            XCTAssertEqual(try store.verify(), try store.licenseCount(), kind)
            XCTAssertNotNil(try store.getLicense(keyId: generatedKeyId(made.count, prefix: "7b")), kind)
        }
    }

    func testCancelFromInsideTheDelegateWithTheOperationHandle() async throws {
        let world = try World()
        let (_, a) = try world.device("A", count: 10)
        try a.setProgressInterval(1)
        let held = Locked<LicenseOperation?>(nil)
        let recorder = Recorder()
        recorder.onEvent.set { n in
            guard n == 4 else { return }  // begin, progress 1, 2, 3
            while held.get() == nil { usleep(1000) }
            held.get()?.cancel()
        }
        a.delegate = recorder
        let op = try a.startBackup()
        held.set(op)
        await assertThrowsAsync(.cancelled) { try await op.wait() }
        XCTAssertEqual(recorder.recorded.map { $0["event"] }, ["begin", "progress", "progress", "progress", "end"])
        XCTAssertEqual(recorder.recorded.last?["error"], "CANCELLED")
        XCTAssertFalse(FileManager.default.fileExists(atPath: world.dir.path("backup/licenses.lbk")))
    }

    /// There is no blocking wait in Swift: `wait()` is async and delegate methods are not. From
    /// a delegate, `Task { try await op.wait() }` does not block and resolves after END; blocking
    /// the delegate on that task would hold the operation (it cannot end while its delegate
    /// does not return), so a bounded wait there times out and the operation then ends normally.
    func testWaitingOnTheOperationFromItsOwnDelegate() async throws {
        let world = try World()
        let (_, a) = try world.device("A", count: 3)
        try a.setProgressInterval(1)
        let held = Locked<LicenseOperation?>(nil)
        let waiter = Locked<Task<Summary, any Error>?>(nil)
        let blockedWaitTimedOut = Locked<Bool?>(nil)
        let recorder = Recorder()
        recorder.onEvent.set { n in
            guard n == 1 else { return }
            while held.get() == nil { usleep(1000) }
            let op = held.get()!
            let done = DispatchSemaphore(value: 0)
            waiter.set(Task {
                defer { done.signal() }
                return try await op.wait()
            })
            blockedWaitTimedOut.set(done.wait(timeout: .now() + 0.3) == .timedOut)
        }
        a.delegate = recorder
        let op = try a.startBackup()
        held.set(op)
        let summary = try await op.wait()
        XCTAssertEqual(summary.licenses, 3)
        XCTAssertEqual(blockedWaitTimedOut.get(), true, "the operation cannot end while its delegate blocks")
        let task = try XCTUnwrap(waiter.get())
        let fromDelegate = try await task.value
        XCTAssertEqual(fromDelegate.licenses, 3)
        XCTAssertEqual(recorder.recorded.last?["event"], "end")
    }
}
