import Foundation
import XCTest
@testable import LicenseBackup

/// RemoteService against a real license-backup-service process on 127.0.0.1: a restore and the
/// quota through it, trust, tokens, pinned service keys, and every network error code.
final class RemoteTests: XCTestCase {
    func testBackupQuotaAndRestoreThroughTheServer() async throws {
        let server = try TestServer(maxDevices: 2)
        let service = try server.client(timeout: 10, retries: 1)
        XCTAssertEqual(service.url, server.url)
        let world = try World()
        let (_, a) = try world.device("A", count: 25, service: service)
        let backed = try await a.backupLicenses(overwrite: true)
        XCTAssertEqual(backed.licenses, 25)
        let (_, b) = try world.device("B", service: service)
        XCTAssertTrue(b.service === service)
        let q = try b.restoreQuota()
        XCTAssertEqual([q.licenses, UInt64(q.maxDevices), UInt64(q.restoresRemaining)], [25, 2, 1])
        XCTAssertFalse(q.deviceAlreadyCounted)
        let restored = try await b.restoreLicenses()
        XCTAssertEqual(restored.licenses, 25)
        let (_, c) = try world.device("C", service: service)
        await assertThrowsAsync(.restoreLimitExceeded) { try await c.restoreLicenses() }
    }

    func testEveryNetworkErrorCodeFromARealServer() async throws {
        let server = try TestServer()
        let strict = try TestServer(extraConfig: strictConfig)
        func backup(_ service: RemoteService, count: Int = 1) async throws -> Summary {
            let world = try World()
            return try await world.device("A", count: count, service: service).1.backupLicenses()
        }
        await assertThrowsAsync(.authenticationFailed) { try await backup(server.client(token: "not-the-token")) }
        await assertThrowsAsync(.serviceNotTrusted) { try await backup(RemoteService(url: server.url, token: server.token)) }
        await assertThrowsAsync(.serviceKeyNotPinned) { try await backup(server.client(serviceKeys: [String(repeating: "00", count: 16)])) }
        let wrongPath = try RemoteService(url: server.url + "/not-a-service", token: server.token, caFile: server.caFile)
        await assertThrowsAsync(.protocolViolation) { try await backup(wrongPath) }
        let pinned = try await backup(server.client(caFile: .some(nil), certPins: [server.certSha256]))
        XCTAssertEqual(pinned.licenses, 1)
        let keyOk = try await backup(server.client(serviceKeys: [server.keyFingerprint]))
        XCTAssertEqual(keyOk.licenses, 1)
        // The strict server: one license a request, one request a device.
        let strictService = try strict.client(retries: 0)
        let big = try World()
        _ = try await big.device("A", count: 2, service: strictService).1.backupLicenses()
        let (_, b) = try big.device("B", service: strictService)
        await assertThrowsAsync(.requestTooLarge) { try await b.restoreLicenses() }
        let small = try World()
        _ = try await small.device("A", count: 1, service: strictService).1.backupLicenses()
        let (_, d) = try small.device("B", service: strictService)
        _ = try d.restoreQuota()
        assertThrows(.rateLimited) { try d.restoreQuota() }
    }

    func testBadOptionsAreRefusedAtOnce() {
        assertThrows(.invalidArgument) { try RemoteService(url: "http://licenses.example.com") }
        assertThrows(.invalidArgument) { try RemoteService(url: "https://x.example", token: "a b") }
        assertThrows(.invalidArgument) { try RemoteService(url: "https://x.example", token: "a\r\nX-Injected: 1") }
        assertThrows(.invalidArgument) { try RemoteService(url: "https://x.example", certPins: ["abcd"]) }
        assertThrows(.invalidArgument) { try RemoteService(url: "https://x.example", timeout: 0) }
        assertThrows(.invalidArgument) { try RemoteService(url: "https://x.example", caFile: "/nonexistent.pem") }
    }
}
