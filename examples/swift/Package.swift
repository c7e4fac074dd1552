// swift-tools-version:6.0
// A command-line program using the LicenseBackup package: back up a device's licenses to a
// folder, then restore them onto a second device, showing progress. `make test-swift` builds
// and runs it (see mk/swift.mk for the linker flags that find the Rust library).
import PackageDescription

let package = Package(
    name: "LicenseBackupExample",
    dependencies: [
        .package(path: "../../bindings-swift"),
    ],
    targets: [
        .executableTarget(
            name: "license-backup-example",
            dependencies: [.product(name: "LicenseBackup", package: "bindings-swift")]
        ),
    ]
)
