import Foundation
import XCTest
@testable import LicenseBackup

/// A table value with no form in the field's Swift type (the compiler rejects such a value).
struct NoSwiftForm: Error {}

/// A value of the bad-input table's JSON (tests/bad-inputs/README.md) in a Swift type.
protocol TableValue {
    static func from(_ any: Any) throws -> Self
}

extension Bool: TableValue {
    static func from(_ any: Any) throws -> Bool {
        guard let n = any as? NSNumber, isJSONBool(n) else { throw NoSwiftForm() }
        return n.boolValue
    }
}

extension UInt32: TableValue {
    static func from(_ any: Any) throws -> UInt32 {
        guard let n = any as? NSNumber, !isJSONBool(n), let v = UInt32(exactly: n.doubleValue),
              n.stringValue == String(v) else { throw NoSwiftForm() }
        return v
    }
}

extension Int64: TableValue {
    static func from(_ any: Any) throws -> Int64 {
        if let o = any as? [String: Any], let text = o["$int"] as? String {
            guard let v = Int64(text) else { throw NoSwiftForm() }
            return v
        }
        guard let n = any as? NSNumber, !isJSONBool(n), let v = Int64(n.stringValue) else { throw NoSwiftForm() }
        return v
    }
}

extension String: TableValue {
    static func from(_ any: Any) throws -> String {
        if let o = any as? [String: Any], let n = o["$text"] as? NSNumber { return String(repeating: "a", count: n.intValue) }
        guard let s = any as? String else { throw NoSwiftForm() }
        return s
    }
}

extension Double: TableValue {
    static func from(_ any: Any) throws -> Double {
        guard let n = any as? NSNumber, !isJSONBool(n) else { throw NoSwiftForm() }
        return n.doubleValue
    }
}

extension Array: TableValue where Element == String {
    static func from(_ any: Any) throws -> [String] {
        guard let list = any as? [Any] else { throw NoSwiftForm() }
        return try list.map { try String.from($0) }
    }
}

extension Data: TableValue {
    static func from(_ any: Any) throws -> Data {
        guard let o = any as? [String: Any], let n = o["$bytes"] as? NSNumber else { throw NoSwiftForm() }
        return Data(repeating: 7, count: n.intValue)
    }
}

func jsonObject(_ value: Any?) throws -> [String: Any] {
    guard let o = value as? [String: Any] else { throw NoSwiftForm() }
    return o
}

/// Field `name`; left out, `defaultValue` (none: no Swift form).
func field<T: TableValue>(_ o: [String: Any], _ name: String, _ type: T.Type, default defaultValue: T?) throws -> T {
    guard let value = o[name] else {
        guard let defaultValue else { throw NoSwiftForm() }
        return defaultValue
    }
    return try T.from(value)
}

/// An optional field: left out or null is nil.
func optionalField<T: TableValue>(_ o: [String: Any], _ name: String, _ type: T.Type) throws -> T? {
    guard let value = o[name], !(value is NSNull) else { return nil }
    return try T.from(value)
}

/// The shared bad-input table (tests/bad-inputs/) through the Swift package: every row a Swift
/// value can express (`"typed": true`) is rejected with the row's code before anything changes,
/// or accepted. The rest (wrong types, NaN, unknown keys, ...) cannot be written in Swift.
final class BadInputTests: XCTestCase {
    func load(_ name: String) throws -> [String: Any] {
        let url = repoRoot.appendingPathComponent("tests/bad-inputs").appendingPathComponent(name)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    /// Puts the row's value at its target and path.
    func put(_ args: inout [String: Any], _ row: [String: Any]) {
        let target = row["target"] as! String
        let path = row["path"] as! [String]
        func set(_ container: Any?, _ keys: ArraySlice<String>) -> Any {
            guard let key = keys.first else { return row["value"]! }
            if let list = container as? [Any] { return [set(list.first, keys)] }
            var o = container as? [String: Any] ?? [:]
            o[key] = set(o[key], keys.dropFirst())
            return o
        }
        args[target] = set(args[target], path[...])
    }

    func path(_ value: Any?, _ root: TempDir) throws -> String {
        if let o = value as? [String: Any], let rel = o["$path"] as? String { return root.path(rel) }
        return try String.from(value as Any)
    }

    /// The Swift form of the table's call; `NoSwiftForm` when the values have none.
    func call(_ name: String, _ a: [String: Any], _ o: [String: Any], _ w: (dir: TempDir, store: LicenseStore, service: EmbeddedService, restorer: BackupRestorer)) async throws {
        func opt<T: TableValue>(_ key: String, _ defaultValue: T) throws -> T {
            guard let v = o[key], !(v is NSNull) else { return defaultValue }
            return try T.from(v)
        }
        func optional<T: TableValue>(_ key: String, _ type: T.Type) throws -> T? {
            guard let v = o[key], !(v is NSNull) else { return nil }
            return try T.from(v)
        }
        let keyId = { try String.from(a["key_id"] as Any) }
        switch name {
        case "LicenseStore.open": _ = try LicenseStore(path: try path(a["path"], w.dir))
        case "LicenseStore.add_license": try w.store.addLicense(try decodeNewLicense(a["license"]), replace: try opt("replace", false))
        case "LicenseStore.add_licenses":
            guard let list = a["licenses"] as? [Any] else { throw NoSwiftForm() }
            try w.store.addLicenses(try list.map(decodeNewLicense), replace: try opt("replace", false))
        case "LicenseStore.get_license": _ = try w.store.getLicense(keyId: try keyId())
        case "LicenseStore.remove_license": _ = try w.store.removeLicense(keyId: try keyId())
        case "LicenseStore.content_key":
            do { _ = try w.store.contentKey(keyId: try keyId()) } catch let e as LicenseBackupError where e.code == .licenseNotFound {}
        case "LicenseStore.update_rights": try w.store.updateRights(keyId: try keyId(), rights: try decodeRights(a["rights"]))
        case "LicenseStore.use_play": _ = try w.store.usePlay(keyId: try keyId())
        case "LicenseStore.set_catalog_entry": try w.store.setCatalogEntry(try decodeCatalogEntry(a["entry"]), keyId: try keyId())
        case "LicenseStore.catalog_entry": _ = try w.store.catalogEntry(keyId: try keyId())
        case "LicenseStore.remove_catalog_entry": _ = try w.store.removeCatalogEntry(keyId: try keyId())
        case "EmbeddedService.open":
            let maxDevices = try optional("max_devices", UInt32.self)
            let refusalUrl = try optional("refusal_url", String.self)
            _ = try EmbeddedService(path: try path(a["path"], w.dir), maxDevices: maxDevices, refusalUrl: refusalUrl)
        case "RemoteService.open":
            _ = try RemoteService(
                url: try String.from(a["url"] as Any),
                token: try optional("token", String.self),
                caFile: try optional("ca_file", String.self),
                certPins: try optional("cert_pins", [String].self) ?? [],
                serviceKeys: try optional("service_keys", [String].self) ?? [],
                timeout: try optional("timeout", Double.self),
                retries: try optional("retries", UInt32.self)
            )
        case "EmbeddedService.set_online": w.service.setOnline(try Bool.from(a["online"] as Any))
        case "EmbeddedService.audit": _ = try w.service.audit()
        case "BackupRestorer.set_property":
            let value: PropertyValue
            switch a["value"] {
            case let n as NSNumber where isJSONBool(n): value = .bool(n.boolValue)
            case let n as NSNumber: value = .u32(try UInt32.from(n))
            case let s as String: value = .string(s)
            case let p?: value = .string(try path(p, w.dir))
            default: throw NoSwiftForm()
            }
            try w.restorer.setProperty(try String.from(a["name"] as Any), value)
        case "BackupRestorer.get_property": _ = try w.restorer.property(try String.from(a["name"] as Any))
        case "BackupRestorer.remove_property": _ = try w.restorer.removeProperty(try String.from(a["name"] as Any))
        case "BackupRestorer.property_by_index": _ = try w.restorer.property(at: Int(try UInt32.from(a["index"] as Any)))
        case "BackupRestorer.backup_licenses":
            // Only whether the call accepts its arguments counts, not the operation's outcome.
            let op = try w.restorer.startBackup(overwrite: try opt("overwrite", false))
            _ = try? await op.wait()
        case "BackupRestorer.restore_licenses":
            let op = try w.restorer.startRestore(individualize: try opt("individualize", false),
                                                 replaceExisting: try opt("replace_existing", false))
            _ = try? await op.wait()
        case "BackupRestorer.restore_quota":
            // Its outcome in a folder with no archive (ARCHIVE_MISSING) does not count.
            do {
                _ = try w.restorer.restoreQuota(individualize: try opt("individualize", false))
            } catch let e as LicenseBackupError where e.code == .archiveMissing {}
        default:
            // A method with a generated overlay method has a generated form (BadInputRecords.swift);
            // Operation.wait has no bad value in Swift (`async` with no timeout).
            if try generatedForm(name, a, o, store: w.store, service: w.service, restorer: w.restorer) { return }
            throw NoSwiftForm()
        }
    }

    func testEveryTypedRowIsRejectedOrAcceptedAsTheTableSays() async throws {
        let generated = try load("generated.json")
        let hand = try load("hand-picked.json")
        var calls = try XCTUnwrap(generated["calls"] as? [String: [String: Any]])
        for (k, v) in (hand["calls"] as? [String: [String: Any]]) ?? [:] { calls[k] = v }
        let rows = (generated["rows"] as! [[String: Any]]) + (hand["rows"] as! [[String: Any]])
        var ran = 0
        for row in rows where (row["typed"] as? NSNumber)?.boolValue == true {
            let id = row["id"] as! String
            let name = row["call"] as! String
            var args = (calls[name]?["args"] as? [String: Any]) ?? [:]
            for (k, v) in (row["args"] as? [String: Any]) ?? [:] { args[k] = v }
            var options: [String: Any] = [:]
            if row["target"] as? String == "options" {
                options[(row["path"] as! [String])[0]] = row["value"]
            } else {
                put(&args, row)
            }
            let dir = try TempDir()
            let store = try LicenseStore(path: dir.path("device.db"))
            let service = try EmbeddedService(path: dir.path("service.db"))
            let restorer = try BackupRestorer(store: store, service: service)
            try restorer.setBackupPath(try dir.makeDir("backup"))
            try restorer.setRestorePath(dir.path("backup"))
            if ["LicenseStore.update_rights", "LicenseStore.use_play"].contains(name), let id = args["key_id"] as? String {
                // A call about a license: the license is there (when the key ID is one).
                try? store.addLicense(NewLicense(keyId: id, contentKey: Data(repeating: 7, count: 16), rights: Rights(),
                                                 issuer: "https://issuer.example", issuedAt: 1))
            }
            let before = try store.licenseCount()
            let expect = row["expect"] as? String
            do {
                try await call(name, args, options, (dir, store, service, restorer))
                XCTAssertNil(expect, "\(id): accepted, expected \(expect ?? "")")
            } catch is NoSwiftForm {
                if name != "Operation.wait" { XCTFail("\(id): a typed row has no Swift form") }
                continue
            } catch let error as LicenseBackupError {
                XCTAssertEqual(error.name, expect, "\(id): \(error)")
                XCTAssertEqual(try store.licenseCount(), before, "\(id): nothing changes")
            }
            ran += 1
        }
        XCTAssertGreaterThan(ran, 80, "typed rows run through Swift")
    }
}
