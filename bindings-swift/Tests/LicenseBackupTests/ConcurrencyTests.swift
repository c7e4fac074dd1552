import Foundation
import XCTest
import LicenseBackup

// Swift 6 language mode (the package's tools version): everything here compiles without
// `@unchecked Sendable`, locks or `nonisolated(unsafe)`.

/// What a SwiftUI app writes first: a main-actor view model that runs a backup and shows its
/// progress. Its state is touched only on the main actor.
@MainActor
final class BackupViewModel {
    var done: UInt64 = 0
    var total: UInt64 = 0
    var restricted: [String] = []
    var names: [String] = []
    var offMainActor = 0
    var summary: Summary?
    var failure: LicenseBackupError?

    func backUp(with restorer: BackupRestorer) async {
        do throws(LicenseBackupError) {
            let events = try restorer.backupEvents(overwrite: true)
            for await event in events {
                if !Thread.isMainThread { offMainActor += 1 }
                names.append(event.name)
                switch event.kind {
                case .progress(_, let done, let total):
                    self.done = done
                    self.total = total
                case .restrictedLicense(let keyId, _):
                    restricted.append(keyId)
                default:
                    break
                }
            }
            summary = try await events.wait()
        } catch {
            failure = error
        }
    }
}

/// An actor counting the events of a restore.
actor RestoreTally {
    private(set) var progress = 0
    private(set) var last: String?
    private(set) var endResult: Result<Summary, LicenseBackupError>?

    func restore(with restorer: BackupRestorer) async throws(LicenseBackupError) -> Summary {
        let events = try restorer.restoreEvents()
        for await event in events {
            last = event.name
            switch event.kind {
            case .progress: progress += 1
            case .end(_, let result): endResult = result
            default: break
            }
        }
        return try await events.wait()
    }
}

final class ConcurrencyTests: XCTestCase {
    func testAMainActorModelConsumesEventsOnTheMainActor() async throws {
        let world = try World()
        let (_, restorer) = try world.device("A", count: 30, restricted: [3, 7])
        try restorer.setProgressInterval(1)
        let model = BackupViewModel()
        await model.backUp(with: restorer)
        let (summary, failure, names, done, total, restricted, off) = await MainActor.run {
            (model.summary, model.failure, model.names, model.done, model.total, model.restricted, model.offMainActor)
        }
        XCTAssertNil(failure)
        XCTAssertEqual(summary?.licenses, 28)
        XCTAssertEqual(summary?.restricted, 2)
        XCTAssertEqual(off, 0, "every event was handled on the main thread")
        XCTAssertEqual(names.first, "begin")
        XCTAssertEqual(names.last, "end", "END last")
        XCTAssertEqual(names.filter { $0 == "end" }.count, 1)
        XCTAssertEqual(names.filter { $0 == "progress" }.count, 30)
        XCTAssertEqual(done, 30)
        XCTAssertEqual(total, 30)
        XCTAssertEqual(restricted, [generatedKeyId(3), generatedKeyId(7)])
    }

    func testAnActorConsumesTheEventsOfARestore() async throws {
        let world = try World()
        let (_, a) = try world.device("A", count: 12)
        _ = try await a.backupLicenses()
        let (storeB, b) = try world.device("B")
        try b.setProgressInterval(1)
        let tally = RestoreTally()
        let summary = try await tally.restore(with: b)
        XCTAssertEqual(summary.licenses, 12)
        XCTAssertEqual(try storeB.licenseCount(), 12)
        let progress = await tally.progress
        let last = await tally.last
        XCTAssertEqual(progress, 12)
        XCTAssertEqual(last, "end")
        guard case .success(let ended)? = await tally.endResult else { return XCTFail("END reported success") }
        XCTAssertEqual(ended.licenses, 12)
    }

    func testTheEventsOfAFailedOperationEndWithItsError() async throws {
        let world = try World()
        let (_, a) = try world.device("A", count: 2)
        _ = try await a.backupLicenses()
        let events = try a.backupEvents()          // no overwrite: BACKUP_EXISTS
        var last: BackupRestoreEvent?
        for await event in events { last = event }
        guard case .end(.backup, .failure(let error))? = last?.kind else { return XCTFail("END with the error") }
        XCTAssertEqual(error.code, .backupExists)
        await assertThrowsAsync(.backupExists) { try await events.wait() }
        // Synchronous failures are thrown by the call itself.
        let (_, fresh) = try world.device("C")
        try fresh.setBackupPath(nil)
        assertThrows(.pathNotSet) { try fresh.backupEvents() }
    }

    func testCancellingTheConsumingTaskCancelsTheOperation() async throws {
        let world = try World()
        let (store, a) = try world.device("A")
        try store.addLicenses((1...5_000).map { generatedLicense($0) })
        try a.setProgressInterval(1)
        let events = try a.backupEvents()
        let seen = Task {
            var progress = 0
            var sawEnd = false
            for await event in events {
                if case .progress = event.kind {
                    progress += 1
                    if progress == 10 { withUnsafeCurrentTask { $0?.cancel() } }
                }
                if case .end = event.kind { sawEnd = true }
            }
            return (progress, sawEnd)
        }
        let (progress, sawEnd) = await seen.value
        XCTAssertEqual(progress, 10, "the iteration ends right after the task is cancelled")
        XCTAssertFalse(sawEnd, "the remaining events, END included, are dropped")
        await assertThrowsAsync(.cancelled) { try await events.wait() }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: world.backupDir), [], "nothing written")
        XCTAssertTrue(events.operation.isFinished)
        // The restorer is free for the next operation.
        let again = try await a.backupLicenses()
        XCTAssertEqual(again.licenses, 5_000)
    }

    func testCancellingTheWaitingTaskCancelsTheOperation() async throws {
        let world = try World()
        let (store, a) = try world.device("A")
        try store.addLicenses((1...20_000).map { generatedLicense($0) })
        try a.setProgressInterval(1)
        let started = Locked(false)
        let recorder = Recorder()
        recorder.onEvent.set { _ in started.set(true) }
        a.delegate = recorder
        let task = Task { try await a.backupLicenses() }
        while !started.get() { try await Task.sleep(nanoseconds: 1_000_000) }
        task.cancel()
        switch await task.result {
        case .success: XCTFail("a cancelled backup of 20,000 licenses succeeded")
        case .failure(let error): XCTAssertEqual((error as? LicenseBackupError)?.code, .cancelled)
        }
        XCTAssertEqual(recorder.recorded.last?["event"], "end")
        XCTAssertEqual(recorder.recorded.last?["error"], "CANCELLED")
    }

    func testAnUnreadSequenceNeverStallsTheOperation() async throws {
        let world = try World()
        let (store, a) = try world.device("A")
        try store.addLicenses((1...6_000).map { generatedLicense($0) })
        try a.setProgressInterval(1)          // 6,002 events: more than the sequence buffers
        let operation = try a.backupEvents().operation   // the sequence itself is dropped
        let summary = try await operation.wait()
        XCTAssertEqual(summary.licenses, 6_000)
    }

    func testASlowConsumerGetsEveryEventInOrder() async throws {
        let world = try World()
        let (store, a) = try world.device("A")
        try store.addLicenses((1...9_000).map { generatedLicense($0, restricted: $0 % 1_000 == 0) })
        try a.setProgressInterval(1)          // more events than the sequence buffers
        let events = try a.backupEvents()
        var done: [UInt64] = []
        var restricted = 0
        var emitted: UInt64 = 0
        for await event in events {
            XCTAssertGreaterThanOrEqual(event.emittedNs, emitted)
            emitted = event.emittedNs
            switch event.kind {
            case .progress(_, let d, _):
                done.append(d)
                if d % 2_000 == 0 { try await Task.sleep(nanoseconds: 20_000_000) }
            case .restrictedLicense: restricted += 1
            default: break
            }
        }
        XCTAssertEqual(done, Array(1...9_000))
        XCTAssertEqual(restricted, 9)
        let summary = try await events.wait()
        XCTAssertEqual(summary.licenses, 8_991)
    }

    func testReleasingTheRestorerLosesNoEvent() async throws {
        /// Holds no restorer: only the operation is kept.
        final class Ends: BackupRestoreDelegate {
            let events = Locked<[String]>([])
            func receive(_ event: BackupRestoreEvent) throws {
                if case .begin = event.kind { Thread.sleep(forTimeInterval: 0.05) }  // the restorer goes meanwhile
                events.update { $0.append(event.name) }
            }
        }
        let world = try World()
        let ends = Ends()
        weak var weakRestorer: BackupRestorer?
        let operation: LicenseOperation
        do {
            let (store, restorer) = try world.device("A")
            try store.addLicenses((1...2_000).map { generatedLicense($0) })
            try restorer.setProgressInterval(1)
            restorer.delegate = ends
            weakRestorer = restorer
            operation = try restorer.startBackup()
        }
        let summary = try await operation.wait()
        XCTAssertEqual(summary.licenses, 2_000)
        let names = ends.events.get()
        XCTAssertEqual(names.count, 2_002, "BEGIN, 2,000 PROGRESS, END: nothing dropped")
        XCTAssertEqual(names.last, "end")
        XCTAssertNil(weakRestorer, "after END the operation lets the restorer go")
    }

    func testADelegateThrowingAtEndChangesNoOutcome() async throws {
        struct AtEnd: Error {}
        final class ThrowsAtEnd: BackupRestoreDelegate {
            func end(_ operation: OperationKind, result: Result<Summary, LicenseBackupError>) throws { throw AtEnd() }
        }
        let world = try World()
        let (_, a) = try world.device("A", count: 3)
        let delegate = ThrowsAtEnd()
        a.delegate = delegate
        let summary = try await a.backupLicenses()
        XCTAssertEqual(summary.licenses, 3, "the backup stands")
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: world.backupDir).isEmpty, "the archive is written")
        // A restore too: applied, and the call succeeds.
        let (storeB, b) = try world.device("B")
        b.delegate = delegate
        let restored = try await b.restoreLicenses()
        XCTAssertEqual(restored.licenses, 3)
        XCTAssertEqual(try storeB.licenseCount(), 3)
        // A failed operation keeps its own error.
        await assertThrowsAsync(.backupExists) { try await a.backupLicenses() }
    }

    func testTypedErrorsReadNaturallyInClosuresAndTasks() async throws {
        let world = try World()
        let (_, a) = try world.device("A", count: 1)
        _ = try await a.backupLicenses()
        // `do throws(LicenseBackupError)` keeps the type inside a closure.
        let code = await Task { () -> ErrorCode? in
            do throws(LicenseBackupError) {
                _ = try await a.backupLicenses()
                return nil
            } catch {
                return error.code
            }
        }.value
        XCTAssertEqual(code, .backupExists)
        // `catch let error as LicenseBackupError` in a throwing closure.
        let described: () async -> String = {
            do {
                _ = try await a.backupLicenses()
                return ""
            } catch let error as LicenseBackupError where error.code == .backupExists {
                return error.name
            } catch {
                return "\(error)"
            }
        }
        let name = await described()
        XCTAssertEqual(name, "BACKUP_EXISTS")
        // A Task's own error is `any Error`.
        let failing = Task { try await a.backupLicenses() }
        do {
            _ = try await failing.value
            XCTFail("expected BACKUP_EXISTS")
        } catch let error as LicenseBackupError where error.code == .backupExists {
            XCTAssertEqual(error.number, 204)
        } catch {
            XCTFail("\(error)")
        }
    }
}
