import Foundation
import XCTest
@testable import LicenseBackup

/// LicenseBackupLogging: the engine's records reach the handler with their level, target and
/// fields, filtered by level; no record holds key material; `nil` stops logging.
final class LoggingTests: XCTestCase {
    private func ended(_ records: [LicenseBackupLogging.Record], _ operation: String) -> [LicenseBackupLogging.Record] {
        records.filter { $0.message == "operation ended" && $0.fields["operation"] == operation }
    }

    func testOperationsAreLoggedToTheHandlerWithoutKeyMaterial() async throws {
        let records = Locked<[LicenseBackupLogging.Record]>([])
        LicenseBackupLogging.setHandler(level: .debug) { record in records.update { $0.append(record) } }
        defer { LicenseBackupLogging.setHandler(nil) }

        let world = try World()
        let (_, a) = try world.device("A", count: 5, restricted: [2])
        let summary = try await a.backupLicenses()
        XCTAssertEqual(summary.licenses, 4)
        // Logged on the engine's thread before the operation's end reaches the caller.
        let end = try XCTUnwrap(ended(records.get(), "backup").first)
        XCTAssertEqual(end.level, .info)
        XCTAssertEqual(end.fields["outcome"], "OK")
        XCTAssertEqual(end.fields["licenses"], "4")
        XCTAssertEqual(end.fields["restricted"], "1")
        XCTAssertTrue(end.target.hasPrefix("license_backup::"), end.target)

        let (_, b) = try world.device("B")
        _ = try await b.restoreLicenses()
        XCTAssertTrue(records.get().contains { $0.level == .debug && $0.message == "connecting to the service" })
        XCTAssertEqual(ended(records.get(), "restore").first?.fields["outcome"], "OK")

        await assertThrowsAsync(.backupExists) { try await a.backupLicenses() }
        let failed = try XCTUnwrap(ended(records.get(), "backup").last)
        XCTAssertEqual(failed.level, .warning)
        XCTAssertEqual(failed.fields["outcome"], "BACKUP_EXISTS")

        let text = records.get().map { "\($0.target) \($0.message) \($0.fields)" }.joined(separator: "\n")
        for i in 1...5 {
            let key = Data("content-key-5a-\(i)".utf8)
            XCTAssertFalse(text.contains("content-key-5a-\(i)"), "content key \(i) logged")
            XCTAssertFalse(text.contains(key.map { String(format: "%02x", $0) }.joined()), "content key \(i) logged as hex")
        }
    }

    func testTheLevelFiltersAndNilStopsLogging() async throws {
        let records = Locked<[LicenseBackupLogging.Record]>([])
        LicenseBackupLogging.setHandler(level: .warning) { record in records.update { $0.append(record) } }
        defer { LicenseBackupLogging.setHandler(nil) }
        let world = try World()
        let (_, a) = try world.device("A", count: 2)
        _ = try await a.backupLicenses()
        XCTAssertEqual(records.get(), [], "INFO records are filtered out at .warning")
        await assertThrowsAsync(.backupExists) { try await a.backupLicenses() }
        XCTAssertEqual(records.get().map(\.level), [.warning])

        LicenseBackupLogging.setHandler(nil)
        records.set([])
        _ = try await a.backupLicenses(overwrite: true)
        XCTAssertEqual(records.get(), [])
    }
}
