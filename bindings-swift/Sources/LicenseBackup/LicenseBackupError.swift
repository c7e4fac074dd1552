import Foundation
import LicenseBackupBindings

/// The one error type of the package: a stable ``Code`` (number and symbolic name, defined once
/// in the Rust core) and the core's message. When an operation stopped because a delegate
/// method threw, ``underlyingError`` is the error the delegate threw.
///
/// Every call `throws(LicenseBackupError)`. A plain `do` in a closure or `Task {}` catches
/// `any Error`; `do throws(LicenseBackupError)` keeps the type there:
///
/// ```swift
/// Task {
///     do throws(LicenseBackupError) {
///         _ = try await restorer.backupLicenses()
///     } catch where error.code == .backupExists {
///         // ask the user whether to overwrite
///     } catch {
///         print(error.name, error.number, error.message) // "BUSY", 502, "..."
///     }
/// }
/// ```
///
/// Where the error is `any Error` (`try await task.value`): `catch let error as LicenseBackupError`.
public struct LicenseBackupError: Error, CustomStringConvertible, LocalizedError {
    /// The stable error codes; `rawValue` is the stable number (`backupExists.rawValue == 204`).
    public typealias Code = LicenseBackupBindings.ErrorCode

    /// The stable code.
    public let code: Code
    /// The human-readable message (never empty).
    public let message: String
    /// What a delegate method threw, when the operation ended with ``Code/callbackFailed``
    /// because of it; what a ``KeyProtector`` threw, with ``Code/protectorFailed``.
    public let underlyingError: (any Error)?

    /// An error with a code and a message (the code's generic description when `nil`).
    public init(_ code: Code, message: String? = nil, underlyingError: (any Error)? = nil) {
        self.code = code
        self.message = message ?? code.summary()
        self.underlyingError = underlyingError
    }

    /// The stable number, like an HRESULT (`204`).
    public var number: UInt32 { code.rawValue }

    /// The stable symbolic name (`"BACKUP_EXISTS"`).
    public var name: String { code.name }

    public var description: String { "\(name) (\(number)): \(message)" }

    public var errorDescription: String? { message }

    /// Converts whatever the generated layer threw.
    init(binding error: any Error, underlyingError: (any Error)? = nil) {
        switch error {
        case let error as LicenseBackupError:
            self = error
        case BindingError.Failure(let code, let message):
            let attached = code == .callbackFailed || code == .protectorFailed
            self.init(code, message: message, underlyingError: attached ? underlyingError : nil)
        default:
            // A failure inside the generated layer itself (for example a caught Rust panic).
            self.init(.internal, message: "binding failure: \(error)", underlyingError: error)
        }
    }
}

/// The stable error codes (``LicenseBackupError/Code``).
public typealias ErrorCode = LicenseBackupError.Code

extension LicenseBackupError.Code {
    /// The stable symbolic name (`"BACKUP_EXISTS"`), from the Rust core.
    public var name: String { symbolicName() }

    /// The stable number (`204`): the same as `rawValue`.
    public var number: UInt32 { rawValue }

    /// The code with this symbolic name, if there is one.
    public init?(name: String) {
        guard let code = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = code
    }
}

/// Runs a call into the generated layer, turning what it throws into `LicenseBackupError`.
@inline(__always)
func bridged<T>(_ body: () throws -> T) throws(LicenseBackupError) -> T {
    do {
        return try body()
    } catch {
        throw LicenseBackupError(binding: error)
    }
}
