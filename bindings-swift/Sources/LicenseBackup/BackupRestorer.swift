import Foundation
import LicenseBackupBindings

/// Receives the status events of the operations of a ``BackupRestorer``
/// (`IWMStatusCallback::OnStatus`).
///
/// Methods are called on the operation's delivery thread (not the main thread), one at a time and
/// in order; hop to the main actor for UI work. Every operation ends with exactly one
/// ``end(_:result:)``, last. Every method has an empty default implementation.
///
/// A method that throws stops the operation: it ends with ``ErrorCode/callbackFailed`` (``end``
/// is still delivered), and the awaiting caller gets a ``LicenseBackupError`` whose
/// ``LicenseBackupError/underlyingError`` is what the delegate threw.
///
/// Every event first reaches ``receive(_:)``, whose default implementation calls the method of
/// that event below; implement ``receive(_:)`` to see each event as a value, with the time the
/// engine emitted it (``BackupRestoreEvent/emittedNs``).
public protocol BackupRestoreDelegate: AnyObject, Sendable {
    /// Receives every event of an operation, with its emission time. The default implementation
    /// calls ``BackupRestoreEvent/dispatch(to:)``, which calls the event's own method
    /// (``begin(_:)``, ``progress(_:done:total:)``, ...); an implementation that wants those
    /// too calls `try event.dispatch(to: self)`.
    func receive(_ event: BackupRestoreEvent) throws
    /// The operation's work begins (for a restore: after the service has answered).
    func begin(_ operation: OperationKind) throws
    /// `done` of `total` licenses processed (every `progressInterval` licenses, and at the end).
    func progress(_ operation: OperationKind, done: UInt64, total: UInt64) throws
    /// A license was left out of a backup: its content owner does not allow backups. `title`
    /// comes from the catalog, when the application keeps one for that key ID.
    func restrictedLicense(keyId: String, title: String?) throws
    /// A restore is connecting to the License Management Service.
    func connecting() throws
    /// The service has answered; the restore disconnects from it.
    func disconnecting() throws
    /// The service refused the restore; `url` is a page the application can show.
    func refused(code: ErrorCode, message: String, url: String) throws
    /// The operation ended, with its summary or its error. Always last, exactly once.
    func end(_ operation: OperationKind, result: Result<Summary, LicenseBackupError>) throws
}

extension BackupRestoreDelegate {
    public func receive(_ event: BackupRestoreEvent) throws { try event.dispatch(to: self) }
    public func begin(_ operation: OperationKind) throws {}
    public func progress(_ operation: OperationKind, done: UInt64, total: UInt64) throws {}
    public func restrictedLicense(keyId: String, title: String?) throws {}
    public func connecting() throws {}
    public func disconnecting() throws {}
    public func refused(code: ErrorCode, message: String, url: String) throws {}
    public func end(_ operation: OperationKind, result: Result<Summary, LicenseBackupError>) throws {}
}

/// One status event as a value, with when the engine emitted it: what
/// ``BackupRestoreDelegate/receive(_:)`` gets.
public struct BackupRestoreEvent: Sendable {
    /// Which event, with its fields (the arguments of the matching delegate method).
    public enum Kind: Sendable {
        /// ``BackupRestoreDelegate/begin(_:)``.
        case begin(OperationKind)
        /// ``BackupRestoreDelegate/progress(_:done:total:)``.
        case progress(OperationKind, done: UInt64, total: UInt64)
        /// ``BackupRestoreDelegate/restrictedLicense(keyId:title:)``.
        case restrictedLicense(keyId: String, title: String?)
        /// ``BackupRestoreDelegate/connecting()``.
        case connecting
        /// ``BackupRestoreDelegate/disconnecting()``.
        case disconnecting
        /// ``BackupRestoreDelegate/refused(code:message:url:)``.
        case refused(code: ErrorCode, message: String, url: String)
        /// ``BackupRestoreDelegate/end(_:result:)``: always last, exactly once.
        case end(OperationKind, result: Result<Summary, LicenseBackupError>)
    }

    /// The event.
    public let kind: Kind

    /// When the engine emitted the event, in nanoseconds of the clock of
    /// `DispatchTime.now().uptimeNanoseconds`: `mach_absolute_time` (`CLOCK_UPTIME_RAW`) on
    /// Apple platforms, `CLOCK_MONOTONIC` on Linux (where libdispatch reads that clock for
    /// `DispatchTime.now()`). `DispatchTime.now().uptimeNanoseconds - emittedNs` is how long
    /// the event waited before reaching the delegate. Events of an operation have
    /// non-decreasing emission times.
    public let emittedNs: UInt64

    /// An event emitted at `emittedNs`.
    public init(_ kind: Kind, emittedNs: UInt64) {
        self.kind = kind
        self.emittedNs = emittedNs
    }

    /// Calls the delegate method of this event with its fields (what the default
    /// ``BackupRestoreDelegate/receive(_:)`` does); rethrows what it throws.
    public func dispatch(to delegate: any BackupRestoreDelegate) throws {
        switch kind {
        case .begin(let operation):
            try delegate.begin(operation)
        case .progress(let operation, let done, let total):
            try delegate.progress(operation, done: done, total: total)
        case .restrictedLicense(let keyId, let title):
            try delegate.restrictedLicense(keyId: keyId, title: title)
        case .connecting:
            try delegate.connecting()
        case .disconnecting:
            try delegate.disconnecting()
        case .refused(let code, let message, let url):
            try delegate.refused(code: code, message: message, url: url)
        case .end(let operation, let result):
            try delegate.end(operation, result: result)
        }
    }
}

/// Backs up the licenses of a store to a folder and restores them from one
/// (`WMCreateBackupRestorer`, `IWMBackupRestoreProps`, `IWMLicenseBackup`, `IWMLicenseRestore`).
///
/// ```swift
/// let restorer = try BackupRestorer(store: store, service: service)
/// restorer.delegate = self                       // weak
/// try restorer.setBackupPath("/Volumes/USB")
/// let summary = try await restorer.backupLicenses(overwrite: true)
/// ```
///
/// Cancelling the awaiting task cancels the operation, as do ``cancelLicenseBackup()`` and
/// ``cancelLicenseRestore()``; it then ends with ``ErrorCode/cancelled``.
public final class BackupRestorer: @unchecked Sendable {
    // @unchecked: the only mutable state, the delegate reference, is guarded by `lock`.
    private let raw: RawBackupRestorer
    private let lock = NSLock()
    private weak var currentDelegate: (any BackupRestoreDelegate)?

    /// The store this restorer works on.
    public let store: LicenseStore
    /// The service that authorizes its restores.
    public let service: EmbeddedService

    /// A restorer over `store`, authorizing restores with `service`.
    public init(store: LicenseStore, service: EmbeddedService) throws(LicenseBackupError) {
        raw = try bridged { try RawBackupRestorer(store: store.raw, service: service.raw) }
        self.store = store
        self.service = service
    }

    /// Receives the events of every operation of this restorer. Held weakly, so an object that
    /// owns the restorer can be its delegate without a retain cycle. Events of an operation go
    /// to the delegate set at the time of each event; with none, they are dropped.
    public weak var delegate: (any BackupRestoreDelegate)? {
        get { lock.withLock { currentDelegate } }
        set { lock.withLock { currentDelegate = newValue } }
    }

    // MARK: Properties (IWMBackupRestoreProps)

    /// Sets a property by name (`"BackupPath"`, `"RestorePath"`, `"ProgressInterval"`).
    /// ``ErrorCode/unknownProperty``, ``ErrorCode/wrongPropertyType`` or
    /// ``ErrorCode/invalidArgument`` when the name or value is not accepted.
    public func setProperty(_ name: String, _ value: PropertyValue) throws(LicenseBackupError) {
        try bridged { try raw.setProperty(name: name, value: value) }
    }

    /// A property's value by name; `nil` if it is known but not set.
    public func property(_ name: String) throws(LicenseBackupError) -> PropertyValue? {
        try bridged { try raw.getProperty(name: name) }
    }

    /// The `index`-th property set (in the order they were first set), with its name.
    public func property(at index: Int) throws(LicenseBackupError) -> (name: String, value: PropertyValue) {
        guard let index = UInt32(exactly: index) else {
            throw LicenseBackupError(.invalidArgument, message: "property index \(index) out of range")
        }
        let named = try bridged { try raw.propertyByIndex(index: index) }
        return (named.name, named.value)
    }

    /// How many properties are set.
    public func propertyCount() throws(LicenseBackupError) -> Int {
        Int(try bridged { try raw.propertyCount() })
    }

    /// Removes a property; returns whether it was set.
    @discardableResult
    public func removeProperty(_ name: String) throws(LicenseBackupError) -> Bool {
        try bridged { try raw.removeProperty(name: name) }
    }

    /// Removes every property.
    public func removeAllProperties() throws(LicenseBackupError) {
        try bridged { try raw.removeAllProperties() }
    }

    /// The folder a backup writes its archive to (`BackupPath`), or `nil` if not set.
    public var backupPath: String? { stringProperty("BackupPath") }

    /// The folder a restore reads the archive from (`RestorePath`), or `nil` if not set.
    public var restorePath: String? { stringProperty("RestorePath") }

    /// A PROGRESS event every this many licenses (`ProgressInterval`); `nil` if not set (the
    /// core then uses 100).
    public var progressInterval: UInt32? {
        if case .u32(let n)? = try? raw.getProperty(name: "ProgressInterval") { n } else { nil }
    }

    /// Sets `BackupPath` (`nil` removes it).
    public func setBackupPath(_ path: String?) throws(LicenseBackupError) {
        try setOrRemove("BackupPath", path.map(PropertyValue.string))
    }

    /// Sets `RestorePath` (`nil` removes it).
    public func setRestorePath(_ path: String?) throws(LicenseBackupError) {
        try setOrRemove("RestorePath", path.map(PropertyValue.string))
    }

    /// Sets `ProgressInterval` (at least 1; `nil` removes it).
    public func setProgressInterval(_ interval: UInt32?) throws(LicenseBackupError) {
        try setOrRemove("ProgressInterval", interval.map(PropertyValue.u32))
    }

    private func stringProperty(_ name: String) -> String? {
        // Reading a known property cannot fail.
        if case .string(let s)? = try? raw.getProperty(name: name) { s } else { nil }
    }

    private func setOrRemove(_ name: String, _ value: PropertyValue?) throws(LicenseBackupError) {
        if let value {
            try setProperty(name, value)
        } else {
            try removeProperty(name)
        }
    }

    // MARK: Operations

    /// Backs up every license that may be backed up to the folder in `BackupPath`
    /// (`IWMLicenseBackup::BackupLicenses`) and returns the summary. Without `overwrite`, an
    /// existing backup there is ``ErrorCode/backupExists`` and is left untouched.
    public func backupLicenses(overwrite: Bool = false) async throws(LicenseBackupError) -> Summary {
        try await startBackup(overwrite: overwrite).wait()
    }

    /// Restores the licenses in the folder in `RestorePath` onto this device
    /// (`IWMLicenseRestore::RestoreLicenses`), authorized by the service, and returns the
    /// summary. `individualize` gives the device a fresh identity; `replaceExisting` replaces
    /// licenses the device already has (by default they are kept and counted as skipped).
    public func restoreLicenses(individualize: Bool = false, replaceExisting: Bool = false) async throws(LicenseBackupError) -> Summary {
        try await startRestore(individualize: individualize, replaceExisting: replaceExisting).wait()
    }

    /// Starts a backup and returns at once. Fails synchronously with ``ErrorCode/pathNotSet``
    /// or ``ErrorCode/busy``; everything else is reported to the delegate and by
    /// ``LicenseOperation/wait()``.
    public func startBackup(overwrite: Bool = false) throws(LicenseBackupError) -> LicenseOperation {
        let bridge = DelegateBridge(restorer: self)
        let op = try bridged { try raw.startBackup(overwrite: overwrite, sink: bridge) }
        return LicenseOperation(raw: op, bridge: bridge, kind: .backup)
    }

    /// Starts a restore and returns at once. Fails synchronously with ``ErrorCode/pathNotSet``
    /// or ``ErrorCode/busy``.
    public func startRestore(individualize: Bool = false, replaceExisting: Bool = false) throws(LicenseBackupError) -> LicenseOperation {
        let bridge = DelegateBridge(restorer: self)
        let op = try bridged {
            try raw.startRestore(individualize: individualize, replaceExisting: replaceExisting, sink: bridge)
        }
        return LicenseOperation(raw: op, bridge: bridge, kind: .restore)
    }

    /// Cancels the running backup, if any (`IWMLicenseBackup::CancelLicenseBackup`).
    public func cancelLicenseBackup() {
        // Sets a flag in the core; only a caught panic could fail, leaving nothing to do.
        try? raw.cancelLicenseBackup()
    }

    /// Cancels the running restore, if any (`IWMLicenseRestore::CancelLicenseRestore`).
    public func cancelLicenseRestore() {
        try? raw.cancelLicenseRestore()
    }

    /// What the restore quota allows for the archive in `RestorePath` onto this device, asked
    /// of the service without changing anything.
    public func restoreQuota() throws(LicenseBackupError) -> Quota {
        try bridged { try raw.restoreQuota() }
    }

    fileprivate func delegateForEvent() -> (any BackupRestoreDelegate)? { delegate }
}

/// A started backup or restore.
public final class LicenseOperation: Sendable {
    private let raw: RawOperation
    private let bridge: DelegateBridge
    /// Which operation this is.
    public let kind: OperationKind

    fileprivate init(raw: RawOperation, bridge: DelegateBridge, kind: OperationKind) {
        self.raw = raw
        self.bridge = bridge
        self.kind = kind
    }

    /// Waits until the operation has ended and its END event has been delivered; returns the
    /// summary. Cancelling the waiting task cancels the operation.
    public func wait() async throws(LicenseBackupError) -> Summary {
        let raw = self.raw
        do {
            return try await withTaskCancellationHandler {
                try await raw.wait()
            } onCancel: {
                try? raw.cancel()
            }
        } catch {
            throw LicenseBackupError(binding: error, underlyingError: bridge.thrownError)
        }
    }

    /// Asks the operation to stop; it ends soon after with ``ErrorCode/cancelled``.
    public func cancel() {
        try? raw.cancel()
    }

    /// Whether the operation has ended and its END event has been delivered.
    public var isFinished: Bool {
        (try? raw.isFinished()) ?? false
    }
}

/// Receives one operation's events from Rust, a batch per call, and forwards each to the
/// restorer's delegate, in order. Holds the restorer weakly, so no cycle runs through the Rust
/// side.
final class DelegateBridge: RawEventSink, @unchecked Sendable {
    // @unchecked: mutable state is guarded by `lock`.
    private let lock = NSLock()
    private weak var restorer: BackupRestorer?
    private var firstThrown: (any Error)?

    init(restorer: BackupRestorer) {
        self.restorer = restorer
    }

    /// The first error a delegate method threw during this operation.
    var thrownError: (any Error)? { lock.withLock { firstThrown } }

    /// Delivers `events` in order. Between two events it asks `stop` whether the operation was
    /// cancelled meanwhile (a delegate method may have cancelled it) and then drops the rest;
    /// the first event a delegate method throws on ends the batch with the thrown error.
    func onEvents(events: [TimedEvent], stop: RawStopSignal) throws {
        for (index, timed) in events.enumerated() {
            if index > 0, (try? stop.isSet()) ?? false { return }
            // The delegate set at the time of each event receives it.
            guard let delegate = lock.withLock({ restorer })?.delegateForEvent() else { continue }
            do {
                try delegate.receive(event(timed))
            } catch {
                lock.withLock {
                    if firstThrown == nil { firstThrown = error }
                }
                throw CallbackFailure.Thrown(message: String(describing: error))
            }
        }
    }

    /// The overlay's event value for `timed`; an END of ``ErrorCode/callbackFailed`` carries
    /// what the delegate threw.
    private func event(_ timed: TimedEvent) -> BackupRestoreEvent {
        let kind: BackupRestoreEvent.Kind
        switch timed.event {
        case .begin(let operation):
            kind = .begin(operation)
        case .progress(let operation, let done, let total):
            kind = .progress(operation, done: done, total: total)
        case .restrictedLicense(let keyId, let title):
            kind = .restrictedLicense(keyId: keyId, title: title)
        case .connecting:
            kind = .connecting
        case .disconnecting:
            kind = .disconnecting
        case .refused(let code, let message, let url):
            kind = .refused(code: code, message: message, url: url)
        case .end(let operation, let summary, let errorCode, let errorMessage):
            let result: Result<Summary, LicenseBackupError>
            if let errorCode {
                // What the delegate threw, or what the store's key protector threw (an
                // individualizing restore wraps the new seed with it).
                let underlying = errorCode == .callbackFailed ? thrownError
                    : errorCode == .protectorFailed ? lock.withLock({ restorer })?.store.protectorBridge?.take() : nil
                result = .failure(LicenseBackupError(errorCode, message: errorMessage, underlyingError: underlying))
            } else {
                result = .success(summary ?? Summary(licenses: 0, restricted: 0, skipped: 0, bytes: 0, durationMs: 0))
            }
            kind = .end(operation, result: result)
        }
        return BackupRestoreEvent(kind, emittedNs: timed.emittedNs)
    }
}
