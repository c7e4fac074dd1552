import LicenseBackupBindings

/// The engine's diagnostics for the application's logging: operations started and ended (with
/// their outcome code), the service's connections and retries, restore reservations settled
/// from the journal, refusals, a delegate that failed (at END: ``Level/warning``), storage
/// errors. Nothing is logged until a handler is set. No record holds a content key, a wrapped
/// key, a token or any other secret.
///
/// ```swift
/// import os
/// let log = Logger(subsystem: "com.example.app", category: "license-backup")
/// LicenseBackupLogging.setHandler(level: .info) { record in
///     log.log(level: record.level >= .warning ? .error : .info, "\(record.message) \(record.fields)")
/// }
/// ```
public enum LicenseBackupLogging {
    /// How severe a record is; `<` means less severe (`.debug < .info < .warning < .error`).
    public enum Level: Int, Sendable, Comparable, CaseIterable {
        case trace = 0, debug, info, warning, error

        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }

        init(_ raw: RawLogLevel) {
            switch raw {
            case .error: self = .error
            case .warn: self = .warning
            case .info: self = .info
            case .debug: self = .debug
            case .trace: self = .trace
            }
        }

        var raw: RawLogLevel {
            switch self {
            case .error: return .error
            case .warning: return .warn
            case .info: return .info
            case .debug: return .debug
            case .trace: return .trace
            }
        }
    }

    /// One record of the engine's log.
    public struct Record: Sendable, Equatable {
        /// How severe it is.
        public let level: Level
        /// The engine module that logged it, such as `license_backup::operation`.
        public let target: String
        /// What happened.
        public let message: String
        /// Its structured values (`operation`, `outcome`, `licenses`, ...), as text.
        public let fields: [String: String]
    }

    /// Sends the engine's records at `level` and above to `handler` (`nil`: nowhere), replacing
    /// the handler set before. The handler is called on the thread that logged the record (an
    /// operation's thread or the caller's): keep it short, and hop to the main actor yourself
    /// for anything that touches the UI.
    public static func setHandler(level: Level = .info, _ handler: (@Sendable (Record) -> Void)?) {
        let sink = handler.map { HandlerSink($0) }
        // Fails only if a Rust `tracing` subscriber of another kind is installed in the process.
        try? setRawLogSink(sink: sink, level: level.raw)
    }
}

/// Adapts a Swift closure to the generated sink protocol.
private final class HandlerSink: RawLogSink {
    let handler: @Sendable (LicenseBackupLogging.Record) -> Void

    init(_ handler: @escaping @Sendable (LicenseBackupLogging.Record) -> Void) { self.handler = handler }

    func log(record: RawLogRecord) {
        var fields: [String: String] = [:]
        for field in record.fields { fields[field.name] = field.value }
        handler(LicenseBackupLogging.Record(
            level: LicenseBackupLogging.Level(record.level), target: record.target, message: record.message,
            fields: fields))
    }
}
