import Foundation
import LicenseBackupBindings

// The record type aliases (Rights, CatalogEntry, NewLicense, License, Summary, Quota) are
// generated: Generated.swift.
/// A property value: `.string`, `.u32` or `.bool`.
public typealias PropertyValue = LicenseBackupBindings.PropertyValue
/// `.backup` or `.restore`.
public typealias OperationKind = LicenseBackupBindings.OperationKind

/// A key protector of the application: wraps and unwraps the 32-byte secret seed of a store or
/// a service with a key the application keeps (an app on Apple platforms keeps it in the
/// Keychain). `unwrap` returns `nil` for bytes it did not wrap (``ErrorCode/protectorMismatch``);
/// an error it throws becomes ``ErrorCode/protectorFailed`` with the error attached as
/// ``LicenseBackupError/underlyingError``. Called when a store or a service is opened (on the
/// calling thread) and when a restore individualizes the device (on the operation's thread).
public protocol KeyProtector: AnyObject, Sendable {
    /// Wraps the seed; only ``unwrap(_:)`` of the same protector can turn the result back.
    func wrap(_ seed: Data) throws -> Data
    /// The seed, or `nil` when `wrapped` was not wrapped by this protector.
    func unwrap(_ wrapped: Data) throws -> Data?
}

/// Who holds the secret seed of a store (the device identity, which seals every content key)
/// or of a service (which unwraps every archive's data key).
public enum Protector: Sendable {
    /// The seed in clear in the file: whoever copies the file has every content key it seals.
    case unprotected
    /// The platform keystore (the Keychain on Apple platforms, the Secret Service on Linux)
    /// holds a wrapping key per file, filed under `service` (default `"license-backup"`).
    case keyring(service: String? = nil)
    /// The application's own ``KeyProtector``.
    case host(any KeyProtector)

    /// The generated layer's arguments, and the bridge that keeps what a host protector threw.
    func raw() -> (ProtectorKind, String?, ProtectorBridge?) {
        switch self {
        case .unprotected: return (.unprotected, nil, nil)
        case .keyring(let service): return (.keyring, service, nil)
        case .host(let protector): return (.host, nil, ProtectorBridge(protector))
        }
    }
}

/// Calls the application's ``KeyProtector`` for the Rust side and keeps what it threw.
final class ProtectorBridge: RawKeyProtector, @unchecked Sendable {
    // @unchecked: `thrown` is guarded by `lock`.
    private let lock = NSLock()
    private let protector: any KeyProtector
    private var thrown: (any Error)?

    init(_ protector: any KeyProtector) {
        self.protector = protector
    }

    /// What the protector last threw, taken.
    func take() -> (any Error)? {
        lock.withLock {
            defer { thrown = nil }
            return thrown
        }
    }

    private func call<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            lock.withLock { thrown = error }
            throw ProtectorFailure.Thrown(message: String(describing: error))
        }
    }

    func wrap(seed: Data) throws -> Data {
        try call { try protector.wrap(seed) }
    }

    func unwrap(wrapped: Data) throws -> Data? {
        try call { try protector.unwrap(wrapped) }
    }
}

/// Runs a call that may run a host protector: ``ErrorCode/protectorFailed`` carries what it threw.
func bridged<T>(_ bridge: ProtectorBridge?, _ body: () throws -> T) throws(LicenseBackupError) -> T {
    do {
        return try body()
    } catch {
        throw LicenseBackupError(binding: error, underlyingError: bridge?.take())
    }
}

/// The licenses on this device, in a transactional store whose content keys are sealed to the
/// device's key. Key IDs are lowercase hyphenated UUID strings.
public final class LicenseStore: Sendable {
    let raw: RawLicenseStore
    let protectorBridge: ProtectorBridge?

    /// Opens the store at `path`, creating it (with a fresh device identity) if it does not
    /// exist. The folder that holds it must exist. `protector` holds the device's seed; with
    /// ``Protector/unprotected`` (the default) it is kept in clear in the file. An unprotected
    /// store opened with a protector is protected in place.
    public init(path: String, protector: Protector = .unprotected) throws(LicenseBackupError) {
        let (kind, service, bridge) = protector.raw()
        raw = try bridged(bridge) { try RawLicenseStore.open(path: path, kind: kind, service: service, host: bridge) }
        protectorBridge = bridge
    }

    /// The label of the protector the store was opened with (`"unprotected"` without one).
    public var protectorLabel: String { raw.protectorLabel() }

    /// Sets (replaces) the catalog entry of a key ID.
    public func setCatalogEntry(_ entry: CatalogEntry, keyId: String) throws(LicenseBackupError) {
        try bridged { try raw.setCatalogEntry(keyId: keyId, entry: entry) }
    }

}

/// A License Management Service a ``BackupRestorer`` works with: ``EmbeddedService`` (in
/// process) or ``RemoteService`` (a content provider's server).
public protocol LicenseService: AnyObject, Sendable {}

/// The in-process License Management Service: authorizes restores and enforces the restore
/// quota, its ledger in a local SQLite file. Devices on one machine share it by path.
public final class EmbeddedService: LicenseService {
    let raw: RawEmbeddedService

    /// Opens (or creates) the ledger at `path`. `maxDevices` (default 4) is how many distinct
    /// devices a license may live on; `refusalUrl` is the page a refusal points to.
    /// `protector` holds the service's seed, as for ``LicenseStore`` (default unprotected).
    public init(
        path: String, maxDevices: UInt32? = nil, refusalUrl: String? = nil, protector: Protector = .unprotected
    ) throws(LicenseBackupError) {
        let (kind, service, bridge) = protector.raw()
        raw = try bridged(bridge) {
            try RawEmbeddedService.open(
                path: path, maxDevices: maxDevices, refusalUrl: refusalUrl, kind: kind, service: service, host: bridge)
        }
    }

    /// Takes the service offline (restores and quota queries then fail with
    /// ``ErrorCode/serviceUnavailable``) or back online.
    public func setOnline(_ online: Bool) {
        // The Rust side only flips a flag; the call cannot fail short of a caught panic, which
        // leaves nothing for the caller to do.
        try? raw.setOnline(online: online)
    }

}

/// A License Management Service over HTTPS (docs/service-protocol.md): a content provider's
/// server. Nothing is sent until a backup, a restore or a quota query needs it.
public final class RemoteService: LicenseService {
    let raw: RawRemoteService

    /// A client of the service at `url` (`https://host[:port][/prefix]`; `http://` only for a
    /// loopback address). `token` is the bearer token the content provider gave the
    /// application; `caFile` a PEM file of CA certificates trusted besides the system's;
    /// `certPins` SHA-256 fingerprints (hex) of the only server certificates accepted;
    /// `serviceKeys` fingerprints of the service keys a backup may wrap to; `timeout` the
    /// connect, read and write timeout (default 30 s); `retries` how many times a call that
    /// failed in transit is tried again (default 2).
    public init(
        url: String,
        token: String? = nil,
        caFile: String? = nil,
        certPins: [String] = [],
        serviceKeys: [String] = [],
        timeout: TimeInterval? = nil,
        retries: UInt32? = nil
    ) throws(LicenseBackupError) {
        raw = try bridged {
            try RawRemoteService.open(
                url: url, token: token, caFile: caFile, certPins: certPins, serviceKeys: serviceKeys,
                timeout: timeout, retries: retries
            )
        }
    }

    /// The service's URL.
    public var url: String { raw.url() }
}
