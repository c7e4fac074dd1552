import Foundation
import XCTest
@testable import LicenseBackup

final class StoreTests: XCTestCase {
    func testEveryStoreCall() throws {
        let dir = try TempDir()
        let store = try LicenseStore(path: dir.path("device.db"))
        let deviceId = try store.deviceId()
        XCTAssertEqual(deviceId.count, 32)
        XCTAssertEqual(try LicenseStore(path: dir.path("device.db")).deviceId(), deviceId, "identity persists")
        XCTAssertEqual(try store.licenseCount(), 0)

        let one = generatedLicense(1, counted: true)
        try store.addLicense(one)
        try store.addLicenses([generatedLicense(2), generatedLicense(3, restricted: true)])
        XCTAssertEqual(try store.licenseCount(), 3)
        XCTAssertEqual(try store.verify(), 3)

        let got = try XCTUnwrap(try store.getLicense(keyId: generatedKeyId(1)))
        XCTAssertEqual(got.keyId, generatedKeyId(1))
        XCTAssertEqual(got.rights, Rights(playsRemaining: 1))
        XCTAssertEqual(got.issuer, "https://issuer.example")
        XCTAssertEqual(got.issuedAt, 1_700_000_001)
        XCTAssertNil(got.catalog)
        XCTAssertNil(try store.getLicense(keyId: generatedKeyId(9)))
        // Key IDs are accepted in any case, shown lowercase.
        XCTAssertEqual(try store.getLicense(keyId: generatedKeyId(1).uppercased())?.keyId, generatedKeyId(1))

        XCTAssertEqual(try store.listLicenses().map(\.keyId), [1, 2, 3].map { generatedKeyId($0) })
        XCTAssertEqual(try store.listLicenses().map(\.rights.backupAllowed), [true, true, false])

        let key: Data = try store.contentKey(keyId: generatedKeyId(2))
        XCTAssertEqual(key, Data("content-key-5a-2".utf8))

        let entry = CatalogEntry(title: "Song", artist: "Artist", filePath: "/music/song.wma")
        try store.setCatalogEntry(entry, keyId: generatedKeyId(2))
        XCTAssertEqual(try store.catalogEntry(keyId: generatedKeyId(2)), entry)
        XCTAssertEqual(try store.getLicense(keyId: generatedKeyId(2))?.catalog, entry)
        XCTAssertNil(try store.catalogEntry(keyId: generatedKeyId(1)))
        XCTAssertTrue(try store.removeCatalogEntry(keyId: generatedKeyId(2)))
        XCTAssertFalse(try store.removeCatalogEntry(keyId: generatedKeyId(2)))

        // Replace swaps the license; without it the existing one stays.
        assertThrows(.licenseExists) { try store.addLicense(generatedLicense(1, restricted: true)) }
        XCTAssertEqual(try store.getLicense(keyId: generatedKeyId(1))?.rights.backupAllowed, true)
        try store.addLicense(generatedLicense(1, restricted: true), replace: true)
        XCTAssertEqual(try store.getLicense(keyId: generatedKeyId(1))?.rights.backupAllowed, false)
        // A batch is all or nothing.
        assertThrows(.licenseExists) { try store.addLicenses([generatedLicense(4), generatedLicense(1)]) }
        XCTAssertNil(try store.getLicense(keyId: generatedKeyId(4)))
        try store.addLicenses([generatedLicense(4), generatedLicense(1)], replace: true)
        XCTAssertEqual(try store.licenseCount(), 4)

        XCTAssertTrue(try store.removeLicense(keyId: generatedKeyId(4)))
        XCTAssertFalse(try store.removeLicense(keyId: generatedKeyId(4)))
        XCTAssertEqual(try store.licenseCount(), 3)
    }

    func testStoreErrors() throws {
        let dir = try TempDir()
        let store = try LicenseStore(path: dir.path("device.db"))
        assertThrows(.invalidArgument) { try store.getLicense(keyId: "not-a-uuid") }
        assertThrows(.invalidArgument) { try store.contentKey(keyId: "") }
        assertThrows(.invalidArgument) { try store.removeLicense(keyId: "0f8fad5b") }
        assertThrows(.invalidArgument) {
            try store.addLicense(NewLicense(keyId: generatedKeyId(1), contentKey: Data(), rights: Rights(),
                                            issuer: "i", issuedAt: 0))
        }
        assertThrows(.invalidArgument) {
            try store.setCatalogEntry(CatalogEntry(title: "nul\u{0}"), keyId: generatedKeyId(1))
        }
        assertThrows(.licenseNotFound) { try store.contentKey(keyId: generatedKeyId(1)) }
        try Data(String(repeating: "not a store ", count: 500).utf8).write(to: URL(fileURLWithPath: dir.path("junk.db")))
        assertThrows(.wrongFileKind) { try LicenseStore(path: dir.path("junk.db")) }
        assertThrows(.storage) { try LicenseStore(path: dir.path("no/such/folder/device.db")) }
        assertThrows(.invalidArgument) { try EmbeddedService(path: dir.path("s.db"), maxDevices: 0) }
    }

    func testErrorsCarryCodeNumberNameAndMessage() throws {
        let dir = try TempDir()
        let store = try LicenseStore(path: dir.path("device.db"))
        do {
            _ = try store.contentKey(keyId: generatedKeyId(7))
            XCTFail("expected an error")
        } catch where error.code == .licenseNotFound {
            // typed throws: `error` is a LicenseBackupError
        } catch {
            XCTFail("unexpected \(error)")
        }
        let error = try XCTUnwrap(assertThrows(.licenseNotFound) { try store.contentKey(keyId: generatedKeyId(7)) })
        XCTAssertEqual(error.number, 602)
        XCTAssertEqual(error.name, "LICENSE_NOT_FOUND")
        XCTAssertTrue(error.message.contains(generatedKeyId(7)) || !error.message.isEmpty)
        XCTAssertEqual(error.errorDescription, error.message)
        XCTAssertEqual("\(error)", "LICENSE_NOT_FOUND (602): \(error.message)")
        XCTAssertNil(error.underlyingError)
        // Any Swift `Error` handler sees it too.
        let asAny: any Error = error
        XCTAssertEqual((asAny as? LicenseBackupError)?.code, .licenseNotFound)
        XCTAssertEqual(asAny.localizedDescription, error.message)
    }

    func testBindingFailuresMapToInternal() {
        // INTERNAL is what the engine reports for a bug (a caught panic): no API call can reach
        // it on purpose, so check that the overlay maps whatever it cannot classify to it.
        struct Strange: Error {}
        let mapped = LicenseBackupError(binding: Strange())
        XCTAssertEqual(mapped.code, .internal)
        XCTAssertEqual(mapped.number, 900)
        XCTAssertTrue(mapped.underlyingError is Strange)
        XCTAssertEqual(LicenseBackupError(.internal).message, "internal error")
    }

    func testServiceOpensWithPolicyAndTogglesOnline() throws {
        let world = try World(maxDevices: 1)
        let (_, a) = try world.device("A", count: 2)
        _ = try await_ { try await a.backupLicenses() }
        let (_, b) = try world.device("B")
        XCTAssertEqual(
            try b.restoreQuota(),
            Quota(licenses: 2, maxDevices: 1, restoresRemaining: 0, deviceAlreadyCounted: false, allowed: false))
        world.service.setOnline(false)
        assertThrows(.serviceUnavailable) { try b.restoreQuota() }
        world.service.setOnline(true)
        XCTAssertEqual(try a.restoreQuota().deviceAlreadyCounted, true)

        let custom = try EmbeddedService(path: world.dir.path("custom.db"), maxDevices: 2, refusalUrl: "https://example.org/why")
        let (_, c) = try world.device("C", service: custom)
        // The quota query is bound to the archive: through a service it was not made for, it is
        // WRONG_KEY, as the restore would be.
        assertThrows(.wrongKey) { try c.restoreQuota() }
    }
}

/// Runs an async throwing call from a synchronous test.
func await_<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let result = Locked<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        do {
            result.set(.success(try await body()))
        } catch {
            result.set(.failure(error))
        }
        done.signal()
    }
    done.wait()
    return try result.get()!.get()
}
