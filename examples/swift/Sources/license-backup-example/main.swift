// Back up the licenses of device A to a "USB stick" folder, then restore them onto device B
// through the embedded License Management Service, with a progress line: the backup reports to a
// delegate, the restore's events are read as an AsyncSequence.
import Foundation
import LicenseBackup

/// Prints what the operations report. Delegate methods run on the operation's delivery thread.
final class ConsoleDelegate: BackupRestoreDelegate {
    func begin(_ operation: OperationKind) {
        print("  begin \(operation)")
    }

    func progress(_ operation: OperationKind, done: UInt64, total: UInt64) {
        let width = 24
        let filled = total == 0 ? width : Int(done * UInt64(width) / total)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        print("  [\(bar)] \(done)/\(total) licenses")
    }

    func restrictedLicense(keyId: String, title: String?) {
        print("  not backed up (the owner forbids it): \(title ?? "unknown title") [\(keyId)]")
    }

    func connecting() { print("  connecting to the License Management Service") }

    func disconnecting() { print("  the service answered; disconnecting") }

    func refused(code: ErrorCode, message: String, url: String) {
        print("  refused: \(message) (\(code.name)); see \(url)")
    }

    func end(_ operation: OperationKind, result: Result<Summary, LicenseBackupError>) {
        switch result {
        case .success(let s):
            print("  end \(operation): \(s.licenses) licenses, \(s.restricted) restricted, \(s.skipped) skipped, \(s.bytes) bytes")
        case .failure(let error):
            print("  end \(operation) failed: \(error)")
        }
    }
}

let titles = [
    "Blue in Green", "Clair de lune", "Hallelujah", "Heroes", "Hurt", "Jolene",
    "Karma Police", "La Vie en rose", "Like a Rolling Stone", "Respect", "River", "So What",
]

do {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("license-backup-example-\(getpid())")
    let usb = root.appendingPathComponent("usb-stick")
    try FileManager.default.createDirectory(at: usb, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: root) }

    let service = try EmbeddedService(path: root.appendingPathComponent("license-service.db").path)
    let delegate = ConsoleDelegate()

    print("== Device A: \(titles.count) licenses, one of which may not be backed up")
    let deviceA = try LicenseStore(path: root.appendingPathComponent("device-a.db").path)
    for (i, title) in titles.enumerated() {
        let keyId = UUID().uuidString.lowercased()
        try deviceA.addLicense(NewLicense(
            keyId: keyId,
            contentKey: Data((0..<16).map { UInt8(truncatingIfNeeded: i * 31 + $0) }),
            rights: Rights(backupAllowed: i != 4),
            issuer: "https://licenses.example.com",
            issuedAt: 1_700_000_000 + Int64(i)
        ))
        try deviceA.setCatalogEntry(CatalogEntry(title: title), keyId: keyId)
    }
    let backup = try BackupRestorer(store: deviceA, service: service)
    backup.delegate = delegate
    try backup.setBackupPath(usb.path)
    try backup.setProgressInterval(4)
    let backedUp = try await backup.backupLicenses(overwrite: true)
    print("backed up \(backedUp.licenses) licenses to \(usb.lastPathComponent)")

    print("== Device B: restore from the USB stick")
    let deviceB = try LicenseStore(path: root.appendingPathComponent("device-b.db").path)
    let restore = try BackupRestorer(store: deviceB, service: service)
    try restore.setRestorePath(usb.path)
    try restore.setProgressInterval(2)
    let quota = try restore.restoreQuota()
    print("quota: \(quota.restoresRemaining) more devices may receive these \(quota.licenses) licenses")
    // The restore's events as an AsyncSequence, handled here, in this task.
    let events = try restore.restoreEvents()
    for await event in events {
        switch event.kind {
        case .progress(_, let done, let total): print("  restored \(done)/\(total)")
        case .refused(_, let message, let url): print("  refused: \(message); see \(url)")
        case .end(_, .failure(let error)): print("  restore failed: \(error)")
        default: break
        }
    }
    let restored = try await events.wait()
    print("restored \(restored.licenses) licenses; device B now holds \(try deviceB.licenseCount())")
    guard restored.licenses == backedUp.licenses, try deviceB.licenseCount() == backedUp.licenses else {
        print("error: device B does not hold what was backed up")
        exit(1)
    }
} catch {
    print("error: \(error)")
    exit(1)
}
