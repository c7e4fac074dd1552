#!/usr/bin/env python3
"""Lays out and packs the npm packages in the napi-rs layout.

    npm_packages.py --out DIR [--addon TRIPLE=FILE]...

The main package `license-backup` (bindings-node's JavaScript, the generated native.js /
native.d.ts, the two licenses; no addon) lists one platform package per target of package.json's
`napi.targets` as an optional dependency, at the same version; npm installs the one whose
`os` / `cpu` / `libc` match. Each --addon makes that platform's package (its `.node`, the
licenses) and packs it. `make test-node` and `make dist` both pack through here, so the
package a test installs is laid out like the one published.

Windows: native.js loads `license-backup-win32-x64-msvc` in the official (MSVC-built) Node and
in Electron, so the x86_64 Windows addon, built here with the GNU toolchain (mingw-w64;
Node-API is a C ABI resolved at load time), is published under that name.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "bindings-node"
LICENSE_FILES = ["LICENSE-MIT", "LICENSE-APACHE", "THIRD-PARTY-NOTICES.md"]
# The main package holds only our JavaScript: the third-party notices go with the addons.
MAIN_LICENSE_FILES = LICENSE_FILES[:2]

# Rust target -> (napi platform suffix, os, cpu, libc). The suffix is what native.js requires.
PLATFORMS = {
    "x86_64-unknown-linux-gnu": ("linux-x64-gnu", "linux", "x64", "glibc"),
    "aarch64-unknown-linux-gnu": ("linux-arm64-gnu", "linux", "arm64", "glibc"),
    "x86_64-unknown-linux-musl": ("linux-x64-musl", "linux", "x64", "musl"),
    "aarch64-apple-darwin": ("darwin-arm64", "darwin", "arm64", None),
    "x86_64-apple-darwin": ("darwin-x64", "darwin", "x64", None),
    "x86_64-pc-windows-gnu": ("win32-x64-msvc", "win32", "x64", None),
}


def main_package() -> dict:
    return json.loads((NODE_DIR / "package.json").read_text())


def platform_name(triple: str) -> str:
    return f"{main_package()['name']}-{PLATFORMS[triple][0]}"


def addon_file(triple: str) -> str:
    return f"{main_package()['napi']['binaryName']}.{PLATFORMS[triple][0]}.node"


def npm_pack(folder: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
    result = subprocess.run(
        ["npm", "pack", "--json", "--no-audit", "--no-fund", "--loglevel=error", "--pack-destination", str(out)],
        cwd=folder, check=True, capture_output=True, text=True,
    )
    return out / json.loads(result.stdout)[0]["filename"]


def copy_licenses(dest: pathlib.Path, names: list[str] = LICENSE_FILES) -> None:
    for name in names:
        shutil.copy(ROOT / name, dest / name)


def stage_main(dest: pathlib.Path) -> None:
    pkg = main_package()
    targets = pkg["napi"]["targets"]
    unknown = [t for t in targets if t not in PLATFORMS]
    if unknown:
        sys.exit(f"npm_packages: no platform package defined for napi.targets {unknown}")
    pkg.pop("scripts", None)
    pkg.pop("devDependencies", None)
    # Our JavaScript as bindings-node/package.json lists it (the hand-written layer, the files
    # lb-generate and napi generate), then the licenses; npm adds the README itself.
    sources = [f for f in pkg["files"] if f not in LICENSE_FILES]
    pkg["files"] = sources + MAIN_LICENSE_FILES
    pkg["optionalDependencies"] = {platform_name(t): pkg["version"] for t in targets}
    dest.mkdir(parents=True)
    for name in sources + ["README.md"]:
        shutil.copy(NODE_DIR / name, dest / name)
    copy_licenses(dest, MAIN_LICENSE_FILES)
    (dest / "package.json").write_text(json.dumps(pkg, indent=2) + "\n")


def stage_platform(dest: pathlib.Path, triple: str, addon: pathlib.Path) -> None:
    main = main_package()
    suffix, os_name, cpu, libc = PLATFORMS[triple]
    name, node_file = platform_name(triple), addon_file(triple)
    pkg = {
        "name": name,
        "version": main["version"],
        "description": f"The {suffix} addon of {main['name']} (installed by it as an optional dependency; "
                       f"built for {triple})",
        "license": main["license"],
        "author": main["author"],
        "homepage": main["homepage"],
        "repository": main["repository"],
        "main": node_file,
        "files": [node_file] + LICENSE_FILES,
        "os": [os_name],
        "cpu": [cpu],
        **({"libc": [libc]} if libc else {}),
        "engines": main["engines"],
    }
    dest.mkdir(parents=True)
    shutil.copy(addon, dest / node_file)
    copy_licenses(dest)
    (dest / "README.md").write_text(
        f"# {name}\n\nThe native addon of [`{main['name']}`]({main['homepage']}) for {suffix} "
        f"(Rust target `{triple}`). Install `{main['name']}`, not this package: npm picks the "
        "platform package that matches the machine.\n"
    )
    (dest / "package.json").write_text(json.dumps(pkg, indent=2) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=pathlib.Path, help="folder for the tarballs")
    ap.add_argument("--addon", action="append", default=[], metavar="TRIPLE=FILE")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out.resolve()
    with tempfile.TemporaryDirectory(prefix="npm-packages-") as tmp:
        staging = pathlib.Path(tmp)
        stage_main(staging / "main")
        print(npm_pack(staging / "main", out))
        for spec in args.addon:
            triple, _, file = spec.partition("=")
            if triple not in main_package()["napi"]["targets"]:
                sys.exit(f"npm_packages: {triple} is not in bindings-node/package.json napi.targets")
            stage_platform(staging / triple, triple, pathlib.Path(file))
            print(npm_pack(staging / triple, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
