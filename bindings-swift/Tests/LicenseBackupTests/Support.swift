import Foundation
import XCTest
@testable import LicenseBackup

/// The repository root (the package lives in `bindings-swift/`).
let repoRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // LicenseBackupTests
    .deletingLastPathComponent()  // Tests
    .deletingLastPathComponent()  // bindings-swift
    .deletingLastPathComponent()

/// A fresh temporary folder, removed at deinit.
final class TempDir {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("license-backup-swift-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ rel: String) -> String { url.appendingPathComponent(rel).path }
    func makeDir(_ rel: String) throws -> String {
        try FileManager.default.createDirectory(atPath: path(rel), withIntermediateDirectories: true)
        return path(rel)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// A mutex-guarded value, for state shared with delegate methods (which run on Rust threads).
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func get() -> Value { lock.withLock { value } }
    func set(_ newValue: Value) { lock.withLock { value = newValue } }
    @discardableResult
    func update<R>(_ body: (inout Value) -> R) -> R { lock.withLock { body(&value) } }
}

/// Key ID of generated license `i` (tests/scenarios/README.md).
func generatedKeyId(_ i: Int, prefix: String = "5a") -> String {
    "\(prefix)000000-0000-0000-0000-" + String(format: "%012x", i)
}

/// Generated license `i` (tests/scenarios/README.md).
func generatedLicense(_ i: Int, prefix: String = "5a", restricted: Bool = false, counted: Bool = false) -> NewLicense {
    NewLicense(
        keyId: generatedKeyId(i, prefix: prefix),
        contentKey: Data("content-key-\(prefix)-\(i)".utf8),
        rights: Rights(backupAllowed: !restricted, playsRemaining: counted ? UInt32(i) : nil),
        issuer: "https://issuer.example",
        issuedAt: 1_700_000_000 + Int64(i)
    )
}

/// The normalized form of an event (tests/scenarios/README.md), built from what the delegate
/// receives, so a runner proves the Swift surface carries every field.
typealias Normalized = [String: AnyHashable]

func opName(_ kind: OperationKind) -> String {
    switch kind {
    case .backup: "backup"
    case .restore: "restore"
    }
}

/// The interface description, `core/interface.json`.
nonisolated(unsafe) let interfaceDescription: [String: Any] = {
    let data = try! Data(contentsOf: repoRoot.appendingPathComponent("core/interface.json"))
    return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
}()

/// Each event's surface fields (the delegate method's arguments, in order) and normalized
/// fields, by event name.
let eventFields: [String: (surface: [String], normalized: [String])] = {
    var out: [String: (surface: [String], normalized: [String])] = [:]
    for event in interfaceDescription["events"] as! [[String: Any]] {
        let names = { (key: String) in (event[key] as! [[String: Any]]).map { $0["name"] as! String } }
        out[event["name"] as! String] = (names("surface"), names("fields"))
    }
    return out
}()

/// The associated values of an event, in the order of its surface fields.
func associatedValues(_ kind: BackupRestoreEvent.Kind) -> [Any] {
    guard let child = Mirror(reflecting: kind).children.first else { return [] }
    let values = Mirror(reflecting: child.value)
    return values.displayStyle == .tuple ? values.children.map { $0.value } : [child.value]
}

/// A field value in the normalized form: operations and codes by name, counts as Int, a
/// missing title as NSNull.
func normalizedValue(_ value: Any) -> AnyHashable {
    switch value {
    case let operation as OperationKind: return opName(operation)
    case let code as ErrorCode: return code.name
    case let n as UInt64: return Int(n)
    case let text as String: return text
    case let text as String?: return text.map { AnyHashable($0) } ?? AnyHashable(NSNull())
    default: return AnyHashable("\(value)")
    }
}

/// The normalized form of an event (tests/scenarios/README.md): each normalized field is the
/// delegate argument of that name, except END's error and counts, from its result.
func normalize(_ event: BackupRestoreEvent) -> Normalized {
    var e: Normalized = ["event": event.name]
    if case .end(let operation, let result) = event.kind {
        e["operation"] = opName(operation)
        switch result {
        case .success(let s):
            e["error"] = NSNull()
            e["licenses"] = Int(s.licenses)
            e["restricted"] = Int(s.restricted)
            e["skipped"] = Int(s.skipped)
        case .failure(let error):
            e["error"] = error.name
            e["licenses"] = 0
            e["restricted"] = 0
            e["skipped"] = 0
        }
        return e
    }
    let fields = eventFields[event.name]!
    let values = associatedValues(event.kind)
    for name in fields.normalized {
        e[name] = normalizedValue(values[fields.surface.firstIndex(of: name)!])
    }
    return e
}

/// A delegate that records every event in normalized form and can act on the n-th event.
final class Recorder: BackupRestoreDelegate, @unchecked Sendable {
    private let events = Locked<[Normalized]>([])
    /// Called with the 1-based number of each event, after recording it; may throw.
    let onEvent = Locked<(@Sendable (Int) throws -> Void)?>(nil)
    let endResults = Locked<[Result<Summary, LicenseBackupError>]>([])
    let threads = Locked<Set<String>>([])

    var recorded: [Normalized] { events.get() }

    func receive(_ event: BackupRestoreEvent) throws {
        switch event.kind {
        case .end(_, let result): endResults.update { $0.append(result) }
        case .refused(_, let message, _): XCTAssertFalse(message.isEmpty)
        default: break
        }
        let n = events.update { list -> Int in
            list.append(normalize(event))
            return list.count
        }
        threads.update { _ = $0.insert(Thread.isMainThread ? "main" : "other") }
        try onEvent.get()?(n)
    }
}

/// An error a test delegate throws.
struct DelegateThrew: Error, Equatable {
    let event: Int
}

/// A small world: a service, a device with `count` generated licenses and a backup folder.
final class World {
    let dir: TempDir
    let service: EmbeddedService
    let backupDir: String

    init(maxDevices: UInt32? = nil) throws {
        dir = try TempDir()
        service = try EmbeddedService(path: dir.path("service.db"), maxDevices: maxDevices)
        backupDir = try dir.makeDir("backup")
    }

    /// A device (store + restorer) with generated licenses 1...count, titled `Track i`, both
    /// paths set to the backup folder.
    func device(_ name: String, count: Int = 0, restricted: Set<Int> = [], service: (any LicenseService)? = nil) throws -> (LicenseStore, BackupRestorer) {
        let store = try LicenseStore(path: dir.path("\(name).db"))
        if count > 0 {
            try store.addLicenses((1...count).map { generatedLicense($0, restricted: restricted.contains($0)) })
            for i in 1...count {
                try store.setCatalogEntry(CatalogEntry(title: "Track \(i)"), keyId: generatedKeyId(i))
            }
        }
        let restorer = try BackupRestorer(store: store, service: service ?? self.service)
        try restorer.setBackupPath(backupDir)
        try restorer.setRestorePath(backupDir)
        return (store, restorer)
    }
}

/// Asserts that `body` throws a `LicenseBackupError` with `code`; returns it.
@discardableResult
func assertThrows<T>(
    _ code: ErrorCode, file: StaticString = #filePath, line: UInt = #line,
    _ body: () throws -> T
) -> LicenseBackupError? {
    do {
        _ = try body()
        XCTFail("expected \(code.name), got success", file: file, line: line)
    } catch let error as LicenseBackupError {
        XCTAssertEqual(error.code, code, "\(error)", file: file, line: line)
        XCTAssertFalse(error.message.isEmpty, file: file, line: line)
        return error
    } catch {
        XCTFail("expected a LicenseBackupError, got \(error)", file: file, line: line)
    }
    return nil
}

/// Async variant of `assertThrows`.
@discardableResult
func assertThrowsAsync<T>(
    _ code: ErrorCode, file: StaticString = #filePath, line: UInt = #line,
    _ body: () async throws -> T
) async -> LicenseBackupError? {
    do {
        _ = try await body()
        XCTFail("expected \(code.name), got success", file: file, line: line)
    } catch let error as LicenseBackupError {
        XCTAssertEqual(error.code, code, "\(error)", file: file, line: line)
        XCTAssertFalse(error.message.isEmpty, file: file, line: line)
        return error
    } catch {
        XCTFail("expected a LicenseBackupError, got \(error)", file: file, line: line)
    }
    return nil
}

// MARK: SHA-256 (FIPS 180-4), for the `set_version` damage: Foundation on Linux has no CryptoKit.

func sha256(_ message: [UInt8]) -> [UInt8] {
    let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]
    var h: [UInt32] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]
    var data = message
    let bitLength = UInt64(message.count) * 8
    data.append(0x80)
    while data.count % 64 != 56 { data.append(0) }
    for shift in stride(from: 56, through: 0, by: -8) { data.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
    func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
    var w = [UInt32](repeating: 0, count: 64)
    for chunk in stride(from: 0, to: data.count, by: 64) {
        for i in 0..<16 {
            let b = chunk + i * 4
            w[i] = UInt32(data[b]) << 24 | UInt32(data[b + 1]) << 16 | UInt32(data[b + 2]) << 8 | UInt32(data[b + 3])
        }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
        for i in 0..<64 {
            let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = hh &+ s1 &+ ch &+ k[i] &+ w[i]
            let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ maj
            (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
        }
        h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d
        h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
    }
    return h.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }
}

func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

/// Error codes only a networked service produces (RemoteTests reaches them).
let networkOnlyCodes: Set<String> = [
    "AUTHENTICATION_FAILED", "PROTOCOL_VIOLATION", "SERVICE_NOT_TRUSTED", "SERVICE_KEY_NOT_PINNED",
    "RATE_LIMITED", "REQUEST_TOO_LARGE",
]

/// Generous rates for tests that restore often (the defaults would throttle them).
let testRates = "\n[rate]\nper_account = { per_second = 1000.0, burst = 1000.0 }\nper_device = { per_second = 1000.0, burst = 1000.0 }\n"

/// A server whose limits a test reaches on purpose: one license a request, one request a device.
let strictConfig = "[limits]\nmax_licenses = 1\n[rate]\nper_account = { per_second = 1000.0, burst = 1000.0 }\nper_device = { per_second = 0.001, burst = 1.0 }\n"

/// The license-backup-service binary: $LICENSE_BACKUP_SERVICE (make test sets it), else the
/// workspace's debug build.
func serviceBinary() -> String {
    ProcessInfo.processInfo.environment["LICENSE_BACKUP_SERVICE"]
        ?? repoRoot.appendingPathComponent("target/debug/license-backup-service").path
}

struct ServerFailure: Error, CustomStringConvertible {
    let description: String
}

/// A real license-backup-service process on 127.0.0.1, made with `init` in a temporary folder
/// (its own key, token, CA and certificate); stopped (SIGTERM) when released.
final class TestServer {
    let dir: TempDir
    let config: String
    let token: String
    let caFile: String
    let certSha256: String
    let keyFingerprint: String
    let log: String
    private(set) var listen = "127.0.0.1:0"
    private(set) var url = ""
    private var process: Process?

    init(maxDevices: UInt32? = nil, refusalUrl: String? = nil, extraConfig: String = "") throws {
        dir = try TempDir()
        var args = ["init", dir.path("service"), "--listen", "127.0.0.1:0"]
        if let maxDevices { args += ["--max-devices", String(maxDevices)] }
        if let refusalUrl { args += ["--refusal-url", refusalUrl] }
        let initProcess = Process()
        initProcess.executableURL = URL(fileURLWithPath: serviceBinary())
        initProcess.arguments = args
        let out = Pipe()
        initProcess.standardOutput = out
        try initProcess.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        // Not waitUntilExit(): it spins a run loop, which never turns on a Swift concurrency
        // thread on Linux.
        while initProcess.isRunning { usleep(1000) }
        guard initProcess.terminationStatus == 0,
              let made = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ServerFailure(description: "license-backup-service init failed")
        }
        config = made["config"] as! String
        token = made["token"] as! String
        caFile = made["ca_file"] as! String
        certSha256 = made["cert_sha256"] as! String
        keyFingerprint = made["key_fingerprint"] as! String
        log = dir.path("server.log")
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: config))
        handle.seekToEndOfFile()
        handle.write(Data(((extraConfig.contains("[rate]") ? "" : testRates) + "\n" + extraConfig).utf8))
        try handle.close()
        FileManager.default.createFile(atPath: log, contents: nil)
        try start()
    }

    /// Starts the server (again, on the same address and ledger after ``stop()``).
    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: serviceBinary())
        p.arguments = ["serve", "--config", config, "--listen", listen]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try p.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty {
                throw ServerFailure(description: "the server did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            }
            line.append(chunk)
        }
        let first = line.prefix(while: { $0 != UInt8(ascii: "\n") })
        let listening = try JSONSerialization.jsonObject(with: Data(first)) as! [String: Any]
        url = listening["listening"] as! String
        listen = String(url.split(separator: "/").last!)
        process = p
    }

    /// SIGTERM, and waits for the exit (polling: waitUntilExit() spins a run loop, which never
    /// turns on a Swift concurrency thread on Linux).
    func stop() {
        guard let p = process else { return }
        process = nil
        p.terminate()
        while p.isRunning { usleep(1000) }
    }

    var running: Bool { process != nil }

    /// What the server's ledger holds for `account` (its `audit` admin command).
    func audit(account: String = "default") throws -> LedgerAudit {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: serviceBinary())
        p.arguments = ["audit", "--account", account, "--config", config]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        // Polling, as in stop(): waitUntilExit() never returns on a Swift concurrency thread.
        while p.isRunning { usleep(1000) }
        guard p.terminationStatus == 0, let v = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ServerFailure(description: "license-backup-service audit failed")
        }
        func n(_ key: String) -> UInt64 { (v[key] as? NSNumber)?.uint64Value ?? UInt64.max }
        return LedgerAudit(pending: n("pending"), confirmed: n("confirmed"), released: n("released"),
                           expired: n("expired"), licenses: n("licenses"), placements: n("placements"),
                           devices: n("devices"))
    }

    /// A client that trusts this server's CA and has its token.
    func client(token: String? = nil, caFile: String?? = nil, certPins: [String] = [], serviceKeys: [String] = [],
                timeout: TimeInterval? = nil, retries: UInt32? = nil) throws -> RemoteService {
        try RemoteService(url: url, token: token ?? self.token, caFile: caFile ?? self.caFile, certPins: certPins,
                          serviceKeys: serviceKeys, timeout: timeout, retries: retries)
    }

    deinit { stop() }
}

/// A host key protector for the tests. Swift on Linux has no crypto library here (CryptoKit is
/// Apple-only and swift-crypto cannot be fetched), so it is built on the suite's own SHA-256: a
/// SHA-256 keystream and a SHA-256 tag over key, nonce and body (a test stand-in, not a
/// recommendation: an app keeps its key in the Keychain). `unwrap` answers `nil` for bytes
/// another key wrapped; every seed it sees is kept in `seen`.
final class Sha256Protector: KeyProtector, @unchecked Sendable {
    private let key: [UInt8]
    private let lock = NSLock()
    private var seeds: [Data] = []

    init(keyByte: UInt8) { key = [UInt8](repeating: keyByte, count: 32) }

    var seen: [Data] { lock.withLock { seeds } }

    private func stream(_ nonce: [UInt8], _ n: Int) -> [UInt8] {
        var out: [UInt8] = []
        var counter: UInt8 = 0
        while out.count < n {
            out += sha256(key + nonce + [counter])
            counter += 1
        }
        return Array(out.prefix(n))
    }

    func wrap(_ seed: Data) throws -> Data {
        lock.withLock { seeds.append(seed) }
        let nonce = (0..<16).map { _ in UInt8.random(in: 0...255) }
        let body = zip([UInt8](seed), stream(nonce, seed.count)).map { $0 ^ $1 }
        return Data(nonce + body + sha256(key + nonce + body))
    }

    func unwrap(_ wrapped: Data) throws -> Data? {
        let bytes = [UInt8](wrapped)
        guard bytes.count > 48 else { return nil }
        let nonce = Array(bytes[0..<16]), body = Array(bytes[16..<(bytes.count - 32)]), tag = Array(bytes.suffix(32))
        guard sha256(key + nonce + body) == tag else { return nil }
        let seed = Data(zip(body, stream(nonce, body.count)).map { $0 ^ $1 })
        lock.withLock { seeds.append(seed) }
        return seed
    }
}

struct KeystoreLocked: Error, Equatable {}

/// A key protector whose keystore is locked: both calls throw.
final class FailingProtector: KeyProtector {
    func wrap(_ seed: Data) throws -> Data { throw KeystoreLocked() }
    func unwrap(_ wrapped: Data) throws -> Data? { throw KeystoreLocked() }
}

/// The protector an `open_store` step names (tests/scenarios/README.md).
func scenarioProtector(_ name: String?) -> Protector {
    guard let name else { return .unprotected }
    if name == "failing" { return .host(FailingProtector()) }
    return .host(Sha256Protector(keyByte: UInt8(name.dropFirst("host:".count))!))
}
