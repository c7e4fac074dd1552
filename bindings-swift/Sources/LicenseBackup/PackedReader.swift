import LicenseBackupBindings

/// Reads the packed form of a batch of events (`RawEventSink.onPackedEvents`, written by the
/// uniffi crate's generated `pack_event`): little-endian integers, a string as its u32 byte
/// length and its UTF-8 bytes, an optional as a presence byte and the value. Reading past the end
/// yields zeros and clears ``isValid``; the generated `BackupRestoreEvent.unpack(_:)` then
/// returns `nil`. Valid only inside the `withUnsafeBytes` call that provided `bytes`.
struct PackedReader {
    private let bytes: UnsafeRawBufferPointer
    private var offset = 0
    /// False once a read went past the end or met a value that is not in the form.
    private(set) var isValid = true

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// Whether every byte has been read.
    var isAtEnd: Bool { offset >= bytes.count }

    @inline(__always)
    private mutating func load<T: FixedWidthInteger>(_: T.Type) -> T {
        let size = MemoryLayout<T>.size
        guard bytes.count - offset >= size else {
            isValid = false
            offset = bytes.count
            return 0
        }
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: value)
    }

    mutating func u8() -> UInt8 { load(UInt8.self) }
    mutating func u32() -> UInt32 { load(UInt32.self) }
    mutating func u64() -> UInt64 { load(UInt64.self) }
    mutating func bool() -> Bool { u8() != 0 }

    mutating func string() -> String {
        let count = Int(u32())
        guard isValid, bytes.count - offset >= count else {
            isValid = false
            offset = bytes.count
            return ""
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count]), as: UTF8.self)
        offset += count
        return text
    }

    mutating func code() -> ErrorCode {
        let number = u32()
        guard let code = ErrorCode(rawValue: number) else {
            isValid = false
            return .internal
        }
        return code
    }

    mutating func operation() -> OperationKind {
        switch u8() {
        case 0: return .backup
        case 1: return .restore
        default:
            isValid = false
            return .backup
        }
    }
}
