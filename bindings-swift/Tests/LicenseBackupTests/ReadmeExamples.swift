import Foundation
import XCTest
import LicenseBackup

// The Swift examples of README.md and bindings-swift/README.md, as they are there (imports
// aside), so that they are compiled in Swift 6 language mode with the tests;
// `testTheReadmeExamplesAreTheseOnes` fails when a README's example differs from its copy here.

// README.md, "Swift":
func rootReadmeExample() async throws {
    let store = try LicenseStore(path: "device.db", protector: .keyring())   // or .unprotected, or .host(myKeychainProtector)
    let restorer = try BackupRestorer(store: store, service: try EmbeddedService(path: "license-service.db"))
    try restorer.setBackupPath("/media/usb")
    let events = try restorer.backupEvents(overwrite: true)   // an AsyncSequence; END is the last event
    for await event in events {                                // cancelling the Task cancels the backup
        switch event.kind {
        case .progress(_, let done, let total): print("\(done)/\(total)")
        case .restrictedLicense(let keyId, let title): print("\(title ?? keyId) stays behind")
        default: break
        }
    }
    let summary = try await events.wait()
    _ = summary
}

// bindings-swift/README.md, how to read the restore quota:
func quotaReadmeExample(restorer: BackupRestorer, show: (String) -> Void) throws {
    let quota = try restorer.restoreQuota()
    switch (quota.allowed, quota.deviceAlreadyCounted) {
    case (false, _): show("Every device slot is used (\(quota.maxDevices) devices per license)")
    case (true, true): show("Restoring here is free: this device already counts")
    case (true, false): show("Allowed; uses one of \(quota.restoresRemaining) remaining devices")
    }
}

// README.md, "The License Management Service over the network":
func remoteReadmeExample(token: String) throws {
    let service = try RemoteService(url: "https://licenses.example.com", token: token, caFile: "ca.pem", timeout: 10)
    _ = service
}

// bindings-swift/README.md:
@MainActor
final class BackupScreenModel {
    var done: UInt64 = 0
    var total: UInt64 = 0
    var notBackedUp: [String] = []

    func backUp(_ restorer: BackupRestorer, to folder: String, overwrite: Bool) async throws(LicenseBackupError) -> Summary {
        try restorer.setBackupPath(folder)
        let events = try restorer.backupEvents(overwrite: overwrite)
        for await event in events {                      // here, on the main actor
            switch event.kind {
            case .progress(_, let done, let total): (self.done, self.total) = (done, total)
            case .restrictedLicense(let keyId, let title): notBackedUp.append(title ?? keyId)
            default: break
            }
        }
        return try await events.wait()
    }
}

func backUpTapped(_ model: BackupScreenModel, _ restorer: BackupRestorer, folder: String) {
    Task { @MainActor in
        do throws(LicenseBackupError) {
            let summary = try await model.backUp(restorer, to: folder, overwrite: false)
            print("backed up \(summary.licenses) licenses")
        } catch where error.code == .backupExists {
            // ask whether to overwrite
        } catch {
            print(error.name, error.number, error.message)   // "BUSY", 502, "..."
        }
    }
}

final class BackupLog: BackupRestoreDelegate {
    func progress(_ operation: OperationKind, done: UInt64, total: UInt64) {
        print("\(done)/\(total)")                        // on the delivery thread
    }
    func end(_ operation: OperationKind, result: Result<Summary, LicenseBackupError>) {
        print("ended: \(result)")
    }
}

func backUp(_ restorer: BackupRestorer, log: BackupLog) async throws(LicenseBackupError) -> Summary {
    restorer.delegate = log
    return try await restorer.backupLicenses(overwrite: true)   // cancelling the Task cancels it
}

final class ReadmeExampleTests: XCTestCase {
    /// The ```swift blocks of a Markdown file, each as its non-blank, non-import lines, trimmed.
    private func swiftBlocks(_ relative: String) throws -> [[String]] {
        let text = try String(contentsOf: repoRoot.appendingPathComponent(relative), encoding: .utf8)
        var blocks: [[String]] = []
        var current: [String]?
        for line in text.components(separatedBy: "\n") {
            if current == nil, line == "```swift" {
                current = []
            } else if current != nil, line == "```" {
                blocks.append(current!)
                current = nil
            } else if current != nil {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if !trimmed.isEmpty, !trimmed.hasPrefix("import ") { current!.append(trimmed) }
            }
        }
        return blocks
    }

    func testTheReadmeExamplesAreTheseOnes() throws {
        let here = try String(contentsOf: URL(fileURLWithPath: #filePath), encoding: .utf8)
            .components(separatedBy: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let root = try swiftBlocks("README.md")
        let package = try swiftBlocks("bindings-swift/README.md")
        XCTAssertEqual(root.count, 2)
        XCTAssertEqual(package.count, 4)
        for block in root + package {
            let found = here.indices.contains { start in
                start + block.count <= here.count && Array(here[start..<start + block.count]) == block
            }
            XCTAssertTrue(found, "a README example is not compiled here:\n\(block.joined(separator: "\n"))")
        }
    }

    func testTheReadmeModelAndDelegateRun() async throws {
        let world = try World()
        let (_, restorer) = try world.device("A", count: 5, restricted: [2])
        try restorer.setProgressInterval(1)
        let model = BackupScreenModel()
        let summary = try await model.backUp(restorer, to: world.backupDir, overwrite: false)
        XCTAssertEqual(summary.licenses, 4)
        let (done, total, skipped) = await MainActor.run { (model.done, model.total, model.notBackedUp) }
        XCTAssertEqual(done, 5)
        XCTAssertEqual(total, 5)
        XCTAssertEqual(skipped, ["Track 2"])
        do {
            _ = try await model.backUp(restorer, to: world.backupDir, overwrite: false)
            XCTFail("expected BACKUP_EXISTS")
        } catch {
            XCTAssertEqual(error.code, .backupExists)   // typed: no cast
        }
        let again = try await backUp(restorer, log: BackupLog())
        XCTAssertEqual(again.licenses, 4)
    }
}
