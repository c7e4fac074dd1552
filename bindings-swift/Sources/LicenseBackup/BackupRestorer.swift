import Foundation
import LicenseBackupBindings

// The delegate protocol `BackupRestoreDelegate`, the event value `BackupRestoreEvent` and the
// property accessors (`backupPath`, `setBackupPath(_:)`, ...) are generated: Generated.swift.

/// Backs up the licenses of a store to a folder and restores them from one
/// (`WMCreateBackupRestorer`, `IWMBackupRestoreProps`, `IWMLicenseBackup`, `IWMLicenseRestore`).
///
/// ```swift
/// let restorer = try BackupRestorer(store: store, service: service)
/// try restorer.setBackupPath("/Volumes/USB")
/// let events = try restorer.backupEvents(overwrite: true)     // or a delegate + backupLicenses
/// for await event in events { /* any isolation: a @MainActor model, an actor */ }
/// let summary = try await events.wait()
/// ```
///
/// Cancelling the awaiting (or iterating) task cancels the operation, as do
/// ``cancelLicenseBackup()`` and ``cancelLicenseRestore()``; it then ends with
/// ``ErrorCode/cancelled``. A running operation keeps its restorer alive until END.
public final class BackupRestorer: @unchecked Sendable {
    // @unchecked: the only mutable state, the delegate reference, is guarded by `lock`.
    let raw: RawBackupRestorer
    private let lock = NSLock()
    private weak var currentDelegate: (any BackupRestoreDelegate)?

    /// The store this restorer works on.
    public let store: LicenseStore
    /// The service that authorizes its restores.
    public let service: any LicenseService

    /// A restorer over `store`, authorizing restores with `service` (an ``EmbeddedService`` or
    /// a ``RemoteService``).
    public init(store: LicenseStore, service: any LicenseService) throws(LicenseBackupError) {
        switch service {
        case let embedded as EmbeddedService:
            raw = try bridged { try RawBackupRestorer(store: store.raw, service: embedded.raw) }
        case let remote as RemoteService:
            raw = try bridged { try RawBackupRestorer.withRemote(store: store.raw, service: remote.raw) }
        default:
            throw LicenseBackupError(.invalidArgument, message: "a service must be an EmbeddedService or a RemoteService")
        }
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

    /// Sets a property, or removes it for `nil` (what the generated accessors call).
    func setOrRemove(_ name: String, _ value: PropertyValue?) throws(LicenseBackupError) {
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

    /// Starts a backup and returns its events as an `AsyncSequence` (``OperationEvents``),
    /// ending after END; `try await events.wait()` gives the summary. Fails synchronously with
    /// ``ErrorCode/pathNotSet`` or ``ErrorCode/busy``. The delegate, if any, gets the events too.
    public func backupEvents(overwrite: Bool = false) throws(LicenseBackupError) -> OperationEvents {
        let channel = EventChannel()
        let operation = try startBackup(overwrite: overwrite, channel: channel)
        return OperationEvents(operation: operation, channel: channel)
    }

    /// Starts a restore and returns its events as an `AsyncSequence` (``OperationEvents``).
    public func restoreEvents(individualize: Bool = false, replaceExisting: Bool = false) throws(LicenseBackupError) -> OperationEvents {
        let channel = EventChannel()
        let operation = try startRestore(individualize: individualize, replaceExisting: replaceExisting, channel: channel)
        return OperationEvents(operation: operation, channel: channel)
    }

    /// Starts a backup and returns at once. Fails synchronously with ``ErrorCode/pathNotSet``
    /// or ``ErrorCode/busy``; everything else is reported to the delegate and by
    /// ``LicenseOperation/wait()``.
    public func startBackup(overwrite: Bool = false) throws(LicenseBackupError) -> LicenseOperation {
        try startBackup(overwrite: overwrite, channel: nil)
    }

    /// Starts a restore and returns at once. Fails synchronously with ``ErrorCode/pathNotSet``
    /// or ``ErrorCode/busy``.
    public func startRestore(individualize: Bool = false, replaceExisting: Bool = false) throws(LicenseBackupError) -> LicenseOperation {
        try startRestore(individualize: individualize, replaceExisting: replaceExisting, channel: nil)
    }

    private func startBackup(overwrite: Bool, channel: EventChannel?) throws(LicenseBackupError) -> LicenseOperation {
        let bridge = EventBridge(restorer: self, channel: channel)
        let op = try bridged { try raw.startBackup(overwrite: overwrite, sink: bridge) }
        return LicenseOperation(raw: op, bridge: bridge, kind: .backup)
    }

    private func startRestore(individualize: Bool, replaceExisting: Bool, channel: EventChannel?) throws(LicenseBackupError) -> LicenseOperation {
        let bridge = EventBridge(restorer: self, channel: channel)
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
    public func restoreQuota(individualize: Bool = false) throws(LicenseBackupError) -> Quota {
        try bridged { try raw.restoreQuota(individualize: individualize) }
    }

}

/// A started backup or restore. It keeps what it needs alive until its END has been delivered:
/// releasing the ``BackupRestorer`` (or this object) while it runs neither stops it nor loses an
/// event; the restorer's delegate at the time of each event gets it, END included.
public final class LicenseOperation: Sendable {
    private let raw: RawOperation
    private let bridge: EventBridge
    /// Which operation this is.
    public let kind: OperationKind

    fileprivate init(raw: RawOperation, bridge: EventBridge, kind: OperationKind) {
        self.raw = raw
        self.bridge = bridge
        self.kind = kind
        bridge.bind(raw)
    }

    /// Waits until the operation has ended and its END event has been delivered; returns the
    /// outcome END reported (a delegate that throws at END does not change it). Cancelling the
    /// waiting task cancels the operation.
    public func wait() async throws(LicenseBackupError) -> Summary {
        let raw = self.raw
        let coreResult: Result<Summary, LicenseBackupError>
        do {
            coreResult = .success(try await withTaskCancellationHandler {
                try await raw.wait()
            } onCancel: {
                try? raw.cancel()
            })
        } catch {
            coreResult = .failure(LicenseBackupError(binding: error, underlyingError: bridge.thrownError))
        }
        // END's outcome is the operation's (the END rule); it is recorded before `raw.wait()`
        // returns. Without one (the wait itself failed), what the core answered.
        return try (bridge.endResult ?? coreResult).get()
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

/// Receives one operation's events from Rust, a batch per call, and hands them to the
/// operation's ``OperationEvents`` (if it was started with one) and, one by one, to the
/// restorer's delegate. Holds the restorer (and so its store and service) strongly until END
/// has been delivered, then lets it go: no cycle outlives the operation.
final class EventBridge: RawEventSink, @unchecked Sendable {
    // @unchecked: mutable state is guarded by `lock`.
    private let lock = NSLock()
    private var restorer: BackupRestorer?
    private let channel: EventChannel?
    private var firstThrown: (any Error)?
    private var end: Result<Summary, LicenseBackupError>?

    init(restorer: BackupRestorer, channel: EventChannel?) {
        self.restorer = restorer
        self.channel = channel
    }

    /// Lets a cancelled event consumer cancel the operation.
    func bind(_ raw: RawOperation) {
        channel?.bind(cancel: { try? raw.cancel() })
    }

    /// The first error a delegate method threw during this operation.
    var thrownError: (any Error)? { lock.withLock { firstThrown } }

    /// What END reported, once it has been delivered.
    var endResult: Result<Summary, LicenseBackupError>? { lock.withLock { end } }

    func onEvents(events: [TimedEvent], stop: RawStopSignal) throws {
        try deliver(events.map(event), stop: stop)
    }

    func onPackedEvents(packed: Data, stop: RawStopSignal) throws {
        var events: [BackupRestoreEvent] = []
        events.reserveCapacity(packed.count / 26)
        let complete = packed.withUnsafeBytes { bytes in
            var reader = PackedReader(bytes)
            while !reader.isAtEnd {
                guard let event = BackupRestoreEvent.unpack(&reader) else { return false }
                events.append(event)
            }
            return true
        }
        try deliver(events, stop: stop)
        if !complete {
            throw CallbackFailure.Thrown(message: "internal: a packed event batch did not decode")
        }
    }

    /// Delivers `events` in order: all at once to the event sequence, then one by one to the
    /// delegate set at the time of each. Between two delegate calls it asks `stop` whether the
    /// operation was cancelled meanwhile (a delegate method may have cancelled it) and then
    /// drops the rest; the first event a delegate method throws on ends the batch with the
    /// thrown error.
    private func deliver(_ events: [BackupRestoreEvent], stop: RawStopSignal) throws {
        channel?.push(events)
        for (index, event) in events.enumerated() {
            if case .end(_, let result) = event.kind {
                try deliverEnd(event, result: result)
                continue
            }
            guard let delegate = lock.withLock({ restorer })?.delegate else { continue }
            if index > 0, (try? stop.isSet()) ?? false { return }
            do {
                try delegate.receive(event)
            } catch {
                lock.withLock {
                    if firstThrown == nil { firstThrown = error }
                }
                throw CallbackFailure.Thrown(message: String(describing: error))
            }
        }
    }

    /// END: recorded as the outcome, delivered, then the restorer is let go. What a delegate
    /// throws at END is reported to the core (which logs it) but changes no outcome.
    private func deliverEnd(_ event: BackupRestoreEvent, result: Result<Summary, LicenseBackupError>) throws {
        let delegate = lock.withLock { () -> (any BackupRestoreDelegate)? in
            end = result
            return restorer?.delegate
        }
        defer { lock.withLock { restorer = nil } }
        do {
            try delegate?.receive(event)
        } catch {
            throw CallbackFailure.Thrown(message: "the END callback threw: \(error)")
        }
    }

    /// The overlay's event value for `timed` (generated); an END of
    /// ``ErrorCode/callbackFailed`` carries what the delegate threw.
    private func event(_ timed: TimedEvent) -> BackupRestoreEvent {
        BackupRestoreEvent(timed, thrown: { code in
            // What the delegate threw, or what the store's key protector threw (an
            // individualizing restore wraps the new seed with it).
            switch code {
            case .callbackFailed: self.thrownError
            case .protectorFailed: self.lock.withLock({ self.restorer })?.store.protectorBridge?.take()
            default: nil
            }
        })
    }
}

/// An END event's result: its summary, or its error, with `thrown(code)` attached (what a
/// delegate or a host protector threw).
func outcomeResult(
    summary: Summary?, errorCode: ErrorCode?, errorMessage: String?, thrown: (ErrorCode) -> (any Error)?
) -> Result<Summary, LicenseBackupError> {
    if let errorCode {
        return .failure(LicenseBackupError(errorCode, message: errorMessage, underlyingError: thrown(errorCode)))
    }
    return .success(summary ?? Summary(licenses: 0, restricted: 0, skipped: 0, bytes: 0, durationMs: 0))
}
