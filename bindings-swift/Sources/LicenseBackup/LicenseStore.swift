import Foundation
import LicenseBackupBindings

// The record type aliases (Rights, CatalogEntry, NewLicense, License, Summary, Quota) are
// generated: Generated.swift.
/// A property value: `.string`, `.u32` or `.bool`.
public typealias PropertyValue = LicenseBackupBindings.PropertyValue
/// `.backup` or `.restore`.
public typealias OperationKind = LicenseBackupBindings.OperationKind

/// The licenses on this device, in a transactional store whose content keys are sealed to the
/// device's key. Key IDs are lowercase hyphenated UUID strings.
public final class LicenseStore: Sendable {
    let raw: RawLicenseStore

    /// Opens the store at `path`, creating it (with a fresh device identity) if it does not
    /// exist. The folder that holds it must exist.
    public init(path: String) throws(LicenseBackupError) {
        raw = try bridged { try RawLicenseStore.open(path: path) }
    }

    /// This device's identity (32 hex digits); it changes when a restore individualizes.
    public func deviceId() throws(LicenseBackupError) -> String {
        try bridged { try raw.deviceId() }
    }

    /// Adds a license. An existing key ID is ``ErrorCode/licenseExists`` unless `replace`.
    public func addLicense(_ license: NewLicense, replace: Bool = false) throws(LicenseBackupError) {
        try bridged { try raw.addLicense(license: license, replace: replace) }
    }

    /// Adds many licenses in one transaction: all of them, or none.
    public func addLicenses(_ licenses: [NewLicense], replace: Bool = false) throws(LicenseBackupError) {
        try bridged { try raw.addLicenses(licenses: licenses, replace: replace) }
    }

    /// The license with this key ID (without its content key), or `nil`.
    public func getLicense(keyId: String) throws(LicenseBackupError) -> License? {
        try bridged { try raw.getLicense(keyId: keyId) }
    }

    /// Every license, ordered by key ID.
    public func listLicenses() throws(LicenseBackupError) -> [License] {
        try bridged { try raw.listLicenses() }
    }

    /// Removes a license; returns whether there was one. Its catalog entry stays.
    @discardableResult
    public func removeLicense(keyId: String) throws(LicenseBackupError) -> Bool {
        try bridged { try raw.removeLicense(keyId: keyId) }
    }

    /// How many licenses the store holds.
    public func licenseCount() throws(LicenseBackupError) -> UInt64 {
        try bridged { try raw.licenseCount() }
    }

    /// The content key of a license, opened with this device's key.
    /// ``ErrorCode/licenseNotFound`` if there is no such license.
    public func contentKey(keyId: String) throws(LicenseBackupError) -> Data {
        try bridged { try raw.contentKey(keyId: keyId) }
    }

    /// Checks the store's integrity and that every content key opens; returns the number of
    /// licenses checked.
    @discardableResult
    public func verify() throws(LicenseBackupError) -> UInt64 {
        try bridged { try raw.verify() }
    }

    /// Sets (replaces) the catalog entry of a key ID.
    public func setCatalogEntry(_ entry: CatalogEntry, keyId: String) throws(LicenseBackupError) {
        try bridged { try raw.setCatalogEntry(keyId: keyId, entry: entry) }
    }

    /// The catalog entry of a key ID, or `nil`.
    public func catalogEntry(keyId: String) throws(LicenseBackupError) -> CatalogEntry? {
        try bridged { try raw.catalogEntry(keyId: keyId) }
    }

    /// Removes the catalog entry of a key ID; returns whether there was one.
    @discardableResult
    public func removeCatalogEntry(keyId: String) throws(LicenseBackupError) -> Bool {
        try bridged { try raw.removeCatalogEntry(keyId: keyId) }
    }
}

/// The in-process License Management Service: authorizes restores and enforces the restore
/// quota, its ledger in a local SQLite file. Devices on one machine share it by path.
public final class EmbeddedService: Sendable {
    let raw: RawEmbeddedService

    /// Opens (or creates) the ledger at `path`. `maxDevices` (default 4) is how many distinct
    /// devices a license may live on; `refusalUrl` is the page a refusal points to.
    public init(path: String, maxDevices: UInt32? = nil, refusalUrl: String? = nil) throws(LicenseBackupError) {
        raw = try bridged { try RawEmbeddedService.open(path: path, maxDevices: maxDevices, refusalUrl: refusalUrl) }
    }

    /// Takes the service offline (restores and quota queries then fail with
    /// ``ErrorCode/serviceUnavailable``) or back online.
    public func setOnline(_ online: Bool) {
        // The Rust side only flips a flag; the call cannot fail short of a caught panic, which
        // leaves nothing for the caller to do.
        try? raw.setOnline(online: online)
    }
}
