#!/usr/bin/env python3
"""Assembles LicenseBackup.xcframework from Rust static libraries, without xcodebuild.

    xcframework.py --out DIR --header H --macos A.a [A.a] --ios A.a

The macOS libraries (arm64, x86_64) become one universal archive (a Mach-O fat file of the two
thin archives, written here: Debian's llvm-lipo cannot read Rust 1.95's objects); each slice
gets Headers/ with the uniffi header and an Apple module map for the `LicenseBackupFFI` module.
Also writes LicenseBackup.xcframework.zip (what Package.swift's binaryTarget downloads) with
fixed timestamps and order, so the same libraries give the same checksum.
"""

from __future__ import annotations

import argparse
import pathlib
import plistlib
import shutil
import struct
import zipfile

LIB = "liblicense_backup_swift.a"
MODULE_MAP = """\
// The C module of the uniffi scaffolding (Apple platforms; the Linux one is in
// bindings-swift/Sources/LicenseBackupFFI). The static library is linked by the binary target.
module LicenseBackupFFI {
    header "LicenseBackupFFI.h"
    export *
    use "Darwin"
    use "_Builtin_stdbool"
    use "_Builtin_stdint"
}
"""
# Mach-O cpu types (mach/machine.h) of the thin archives, by the archive's first object.
CPU = {"arm64": (0x0100000C, 0), "x86_64": (0x01000007, 3)}
ALIGN = 14  # 2^14, the page size of arm64


def fat_archive(thin: dict[str, bytes]) -> bytes:
    """A universal (fat) file of thin static archives, keyed by architecture."""
    archs = sorted(thin)
    align = 1 << ALIGN
    offsets, offset = [], align
    for arch in archs:
        offsets.append(offset)
        offset = (offset + len(thin[arch]) + align - 1) // align * align
    out = bytearray(struct.pack(">II", 0xCAFEBABE, len(archs)))
    for arch, off in zip(archs, offsets, strict=True):
        cputype, subtype = CPU[arch]
        out += struct.pack(">iiIII", cputype, subtype, off, len(thin[arch]), ALIGN)
    for arch, off in zip(archs, offsets, strict=True):
        out += b"\0" * (off - len(out))
        out += thin[arch]
    return bytes(out)


def slice_dir(root: pathlib.Path, ident: str, header: pathlib.Path, lib: bytes) -> None:
    d = root / ident
    (d / "Headers").mkdir(parents=True)
    shutil.copy(header, d / "Headers" / "LicenseBackupFFI.h")
    (d / "Headers" / "module.modulemap").write_text(MODULE_MAP)
    (d / LIB).write_bytes(lib)


def deterministic_zip(folder: pathlib.Path, zip_path: pathlib.Path) -> None:
    base = folder.parent
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted([folder, *folder.rglob("*")]):
            name = path.relative_to(base).as_posix() + ("/" if path.is_dir() else "")
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = ((0o40755 if path.is_dir() else 0o100644) << 16)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, b"" if path.is_dir() else path.read_bytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--header", required=True, type=pathlib.Path)
    ap.add_argument("--macos-arm64", required=True, type=pathlib.Path)
    ap.add_argument("--macos-x86_64", required=True, type=pathlib.Path)
    ap.add_argument("--ios-arm64", required=True, type=pathlib.Path)
    args = ap.parse_args()
    xcf = args.out / "LicenseBackup.xcframework"
    if xcf.exists():
        shutil.rmtree(xcf)
    xcf.mkdir(parents=True)
    fat = fat_archive({"arm64": args.macos_arm64.read_bytes(), "x86_64": args.macos_x86_64.read_bytes()})
    slice_dir(xcf, "macos-arm64_x86_64", args.header, fat)
    slice_dir(xcf, "ios-arm64", args.header, args.ios_arm64.read_bytes())
    libraries = [
        {"LibraryIdentifier": "ios-arm64", "LibraryPath": LIB, "HeadersPath": "Headers",
         "SupportedArchitectures": ["arm64"], "SupportedPlatform": "ios"},
        {"LibraryIdentifier": "macos-arm64_x86_64", "LibraryPath": LIB, "HeadersPath": "Headers",
         "SupportedArchitectures": ["arm64", "x86_64"], "SupportedPlatform": "macos"},
    ]
    with open(xcf / "Info.plist", "wb") as f:
        plistlib.dump({"AvailableLibraries": libraries, "CFBundlePackageType": "XFWK",
                       "XCFrameworkFormatVersion": "1.0"}, f, sort_keys=True)
    deterministic_zip(xcf, args.out / "LicenseBackup.xcframework.zip")
    print(args.out / "LicenseBackup.xcframework.zip")


if __name__ == "__main__":
    main()
