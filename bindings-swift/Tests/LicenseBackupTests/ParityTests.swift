import Foundation
import XCTest
@testable import LicenseBackup

/// Checks the Swift surface against `core/interface.json`: every error code (number, name),
/// every event and its fields, every property and every record field has its counterpart.
final class ParityTests: XCTestCase {
    var interface: [String: Any] = [:]

    override func setUpWithError() throws {
        let data = try Data(contentsOf: repoRoot.appendingPathComponent("core/interface.json"))
        interface = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// `backup_allowed` -> `backupAllowed`; `BackupExists` -> `backupExists`.
    func lowerCamel(_ s: String) -> String {
        let parts = s.split(separator: "_").map(String.init)
        guard let first = parts.first else { return s }
        let head = first.prefix(1).lowercased() + first.dropFirst()
        return head + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    func testErrorCodes() throws {
        let errors = try XCTUnwrap(interface["errors"] as? [[String: Any]])
        XCTAssertEqual(errors.count, ErrorCode.allCases.count, "the Swift enum has exactly the interface's codes")
        for e in errors {
            let number = try XCTUnwrap(e["number"] as? NSNumber).uint32Value
            let name = try XCTUnwrap(e["name"] as? String)
            let variant = try XCTUnwrap(e["variant"] as? String)
            let code = try XCTUnwrap(ErrorCode(rawValue: number), "no Swift code numbered \(number)")
            XCTAssertEqual(code.name, name)
            XCTAssertEqual(code.number, number)
            XCTAssertEqual(ErrorCode(name: name), code)
            XCTAssertEqual("\(code)", lowerCamel(variant), "Swift case name of \(name)")
            XCTAssertEqual(code.summary(), e["message"] as? String)
            let error = LicenseBackupError(code, message: "m")
            XCTAssertEqual(error.number, number)
            XCTAssertEqual(error.name, name)
            XCTAssertEqual(error.message, "m")
        }
    }

    /// Every event of the interface has its delegate method, its case and its fields: checked
    /// on the events the scenarios deliver (ScenarioTests reaches every kind and compares every
    /// normalized field); here, that the normalized form of an event is built from its case
    /// alone, in the order of its surface fields.
    func testNormalizedEventsComeFromTheirCase() throws {
        XCTAssertEqual(normalize(BackupRestoreEvent(.progress(.restore, done: 1, total: 2), emittedNs: 1)),
                       ["event": "progress", "operation": "restore", "done": 1, "total": 2])
        XCTAssertEqual(normalize(BackupRestoreEvent(.restrictedLicense(keyId: "k", title: nil), emittedNs: 1)),
                       ["event": "restricted_license", "key_id": "k", "title": NSNull()])
        XCTAssertEqual(normalize(BackupRestoreEvent(.connecting, emittedNs: 1)), ["event": "connecting"])
        let events = try XCTUnwrap(interfaceDescription["events"] as? [[String: Any]])
        XCTAssertEqual(Set(eventFields.keys), Set(events.map { $0["name"] as! String }))
    }

    /// Every `event_metadata` field of the interface is a property of the event value the
    /// delegate's `receive(_:)` gets, with the idiomatic name and type.
    func testEventMetadata() throws {
        let metadata = try XCTUnwrap(interface["event_metadata"] as? [[String: Any]])
        XCTAssertFalse(metadata.isEmpty)
        let sample = BackupRestoreEvent(.connecting, emittedNs: 42)
        let properties = Dictionary(uniqueKeysWithValues: Mirror(reflecting: sample).children.map { ($0.label!, $0.value) })
        XCTAssertEqual(Set(properties.keys), Set(metadata.map { lowerCamel($0["name"] as! String) }).union(["kind"]),
                       "the event value has the event and exactly the interface's metadata")
        for m in metadata {
            let name = try XCTUnwrap(m["name"] as? String)
            let value = try XCTUnwrap(properties[lowerCamel(name)], "no property for \(name)")
            switch m["type"] as? String {
            case "u64": XCTAssertTrue(value is UInt64, "\(name) is a UInt64")
            default: XCTFail("metadata \(name) has a type the test does not know: \(m["type"] ?? "nil")")
            }
        }
        XCTAssertEqual(sample.emittedNs, 42)
    }

    func testProperties() throws {
        let world = try World()
        let (_, restorer) = try world.device("A")
        try restorer.removeAllProperties()
        let properties = try XCTUnwrap(interface["properties"] as? [[String: Any]])
        XCTAssertEqual(properties.count, 3)
        for p in properties {
            let name = try XCTUnwrap(p["name"] as? String)
            switch (name, p["type"] as? String) {
            case ("BackupPath", "string"):
                try restorer.setBackupPath("/b")
                XCTAssertEqual(restorer.backupPath, "/b")
            case ("RestorePath", "string"):
                try restorer.setRestorePath("/r")
                XCTAssertEqual(restorer.restorePath, "/r")
            case ("ProgressInterval", "u32"):
                try restorer.setProgressInterval(7)
                XCTAssertEqual(restorer.progressInterval, 7)
            default:
                XCTFail("property \(name) has no typed accessor")
            }
            XCTAssertNotNil(try restorer.property(name), "\(name) readable by name")
        }
    }

    func testRecordFields() throws {
        let records = try XCTUnwrap(interface["records"] as? [String: [[String: Any]]])
        let samples: [String: Any] = [
            "Rights": Rights(),
            "CatalogEntry": CatalogEntry(),
            "NewLicense": generatedLicense(1),
            "License": License(keyId: "k", rights: Rights(), issuer: "i", issuedAt: 0, catalog: nil),
            "Summary": Summary(licenses: 0, restricted: 0, skipped: 0, bytes: 0, durationMs: 0),
            "Quota": Quota(licenses: 0, maxDevices: 0, restoresRemaining: 0, deviceAlreadyCounted: false, allowed: false),
            "LedgerAudit": LedgerAudit(
                pending: 0, confirmed: 0, released: 0, expired: 0, licenses: 0, placements: 0, devices: 0),
        ]
        for (record, fields) in records {
            let want = fields.map { lowerCamel($0["name"] as! String) }
            switch record {
            case "BackupFlags":
                // Flags are the arguments of backupLicenses(overwrite:).
                XCTAssertEqual(want, ["overwrite"])
            case "RestoreFlags":
                // ... and of restoreLicenses(individualize:replaceExisting:).
                XCTAssertEqual(want, ["individualize", "replaceExisting"])
            case "AddOptions":
                // ... of addLicense(_:replace:) and addLicenses(_:replace:).
                XCTAssertEqual(want, ["replace"])
            case "ServiceOptions":
                // ... of EmbeddedService(path:maxDevices:refusalUrl:protector:).
                XCTAssertEqual(want, ["maxDevices", "refusalUrl", "protector"])
            case "RemoteServiceOptions":
                // ... of RemoteService(url:token:caFile:certPins:serviceKeys:timeout:retries:).
                XCTAssertEqual(want, ["token", "caFile", "certPins", "serviceKeys", "timeout", "retries"])
            case "StoreOptions":
                // ... of LicenseStore(path:protector:).
                XCTAssertEqual(want, ["protector"])
            case "QuotaOptions":
                // ... and of restoreQuota(individualize:).
                XCTAssertEqual(want, ["individualize"])
            case "PropertyEntry":
                // property(at:) returns (name:value:).
                XCTAssertEqual(want, ["name", "value"])
            default:
                let sample = try XCTUnwrap(samples[record], "record \(record) has no Swift counterpart")
                XCTAssertEqual(Mirror(reflecting: sample).children.map { $0.label! }, want, "fields of \(record)")
            }
        }
    }
}
