// swift-tools-version:6.0
// Events-per-second benchmark of the LicenseBackup package: a backup with ProgressInterval=1,
// a delegate storing a timestamp per event. Build it in release mode against a release build
// of the Rust library (see README.md in this folder).
import PackageDescription

let package = Package(
    name: "LicenseBackupBench",
    dependencies: [
        .package(path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "license-backup-bench",
            dependencies: [.product(name: "LicenseBackup", package: "bindings-swift")]
        ),
    ]
)
