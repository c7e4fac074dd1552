#!/usr/bin/env python3
"""Builds the release artifacts into dist/ (`make dist`).

    dist.py [--out dist] [--only python,node,swift] [--targets T1,T2]

One target at a time (the machine is shared), each under `nice`: for every target its Python
wheel, its Node addon and, on Apple targets, the Swift static library, all with the same C
toolchain (scripts/cross_env.py), so the three share one release build of the core. Then the
sdist, the npm packages (scripts/npm_packages.py) and the XCFramework
(scripts/xcframework.py). Writes dist/manifest.json (every artifact: size, SHA-256, target)
and dist/SHA256SUMS. Cargo builds into target/dist, apart from the development builds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import cross_env  # noqa: E402
import release_meta  # noqa: E402

TARGET_DIR = ROOT / "target" / "dist"
NICE = ["nice", "-n", os.environ.get("DIST_NICE", "19")]

# Rust target -> the wheel's compatibility (maturin --compatibility; None: maturin's tag from the
# deployment target) and whether the Swift static library is built for it.
TARGETS = {
    "x86_64-unknown-linux-gnu": {"wheel": "manylinux2014"},
    "aarch64-unknown-linux-gnu": {"wheel": "manylinux2014"},
    "x86_64-unknown-linux-musl": {"wheel": "musllinux_1_2"},
    "aarch64-apple-darwin": {"wheel": None, "swift": True},
    "x86_64-apple-darwin": {"wheel": None, "swift": True},
    "x86_64-pc-windows-gnu": {"wheel": None},
    "aarch64-apple-ios": {"swift": True, "wheel": False, "node": False},
}
# The cargo profile of every shipped binary (Cargo.toml, [profile.dist]: fat LTO, size-optimized
# dependencies and SQLite).
PROFILE = "dist"
# Strip the symbol table of the shipped ELF and PE libraries (cargo's per-package profile, so the
# core's build stays shared). Mach-O libraries keep it: stripping after zig signs them would
# invalidate the ad-hoc code signature arm64 macOS requires, and their size is in target anyway.
STRIP = ["--config", f'profile.{PROFILE}.package.license-backup-python.strip="symbols"',
         "--config", f'profile.{PROFILE}.package.license-backup-node.strip="symbols"']

log_lines: list[str] = []


def say(msg: str) -> None:
    print(f"dist: {msg}", flush=True)
    log_lines.append(msg)


def run(cmd: list[str], *, env_target: str | None = None, cwd: pathlib.Path = ROOT) -> None:
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET_DIR))
    if env_target:
        env.update(cross_env.target_env(env_target))
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def build_wheel(triple: str, out: pathlib.Path) -> None:
    compat = TARGETS[triple]["wheel"]
    cmd = NICE + ["maturin", "build", "--profile", PROFILE, "--target", triple, "--out", str(out),
                  "--compression-level", "9"]
    if compat:
        cmd += ["--compatibility", compat]
    if "apple" not in triple:
        cmd += STRIP
    run(cmd, env_target=triple, cwd=ROOT / "bindings-python")


def build_addon(triple: str, work: pathlib.Path) -> pathlib.Path:
    outdir = work / "napi" / triple
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    cmd = NICE + [str(ROOT / "bindings-node/node_modules/.bin/napi"), "build", "--platform", "--profile", PROFILE,
                  "--no-const-enum", "--target", triple, "--target-dir", str(TARGET_DIR),
                  "--output-dir", str(outdir), "--no-js", "--dts", "native.d.ts"]
    # (native.js / native.d.ts ship from bindings-node; make test-node checks they are fresh)
    if "apple" not in triple:
        cmd += ["--"] + STRIP
    run(cmd, env_target=triple, cwd=ROOT / "bindings-node")
    (addon,) = outdir.glob("*.node")
    return addon


def build_staticlib(triple: str) -> pathlib.Path:
    run(NICE + ["cargo", "rustc", "--quiet", "--profile", PROFILE, "--target", triple, "-p", "license-backup-swift",
                "--lib", "--crate-type", "staticlib"], env_target=triple)
    return TARGET_DIR / triple / PROFILE / "liblicense_backup_swift.a"


def sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "dist")
    ap.add_argument("--only", default="python,node,swift")
    ap.add_argument("--targets", default=",".join(TARGETS))
    args = ap.parse_args()
    only = set(args.only.split(","))
    targets = args.targets.split(",")
    out = args.out.resolve()
    version = release_meta.version()
    started = time.monotonic()

    errors = release_meta.check()
    if errors:
        sys.exit("dist: " + "\n".join(errors))
    subprocess.run([str(HERE / "build-tools.sh"), "dist"], check=True, stdout=subprocess.DEVNULL)

    work = TARGET_DIR / "work"
    full = set(targets) == set(TARGETS)
    for group in only:
        if full:  # a partial run (--targets) keeps the other targets' artifacts
            shutil.rmtree(out / group, ignore_errors=True)
        (out / group).mkdir(parents=True, exist_ok=True)
    if full:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    addons: dict[str, pathlib.Path] = {}
    staticlibs: dict[str, pathlib.Path] = {}
    timings: dict[str, float] = {}

    if "python" in only:
        t = time.monotonic()
        run(["maturin", "sdist", "--out", str(out / "python")], env_target="x86_64-unknown-linux-gnu",
            cwd=ROOT / "bindings-python")
        timings["sdist"] = time.monotonic() - t
    for triple in targets:
        spec = TARGETS[triple]
        t = time.monotonic()
        if "python" in only and spec.get("wheel") is not False:
            build_wheel(triple, out / "python")
        if "node" in only and spec.get("node", True):
            addons[triple] = build_addon(triple, work)
        if "swift" in only and spec.get("swift"):
            staticlibs[triple] = build_staticlib(triple)
        timings[triple] = time.monotonic() - t
        say(f"{triple}: built in {timings[triple]:.0f} s")

    # Every target's addon and static library built so far (this run's, and a partial run's
    # predecessors'), so the packages always cover every target that has been built.
    for triple in TARGETS:
        found = list((work / "napi" / triple).glob("*.node"))
        if found and triple not in addons:
            addons[triple] = found[0]
        lib = TARGET_DIR / triple / PROFILE / "liblicense_backup_swift.a"
        if TARGETS[triple].get("swift") and lib.exists() and triple not in staticlibs:
            staticlibs[triple] = lib
    if "node" in only:
        for old in (out / "node").glob("*.tgz"):
            old.unlink()
        subprocess.run([sys.executable, str(HERE / "npm_packages.py"), "--out", str(out / "node")]
                       + [f"--addon={t}={p}" for t, p in addons.items()], check=True)
    if "swift" in only:
        missing = {"aarch64-apple-darwin", "x86_64-apple-darwin", "aarch64-apple-ios"} - set(staticlibs)
        if missing:
            sys.exit(f"dist: the XCFramework needs {sorted(missing)}")
        subprocess.run([sys.executable, str(HERE / "xcframework.py"), "--out", str(out / "swift"),
                        "--header", str(ROOT / "bindings-swift/Sources/LicenseBackupFFI/LicenseBackupFFI.h"),
                        "--macos-arm64", str(staticlibs["aarch64-apple-darwin"]),
                        "--macos-x86_64", str(staticlibs["x86_64-apple-darwin"]),
                        "--ios-arm64", str(staticlibs["aarch64-apple-ios"])], check=True)

    artifacts = []
    for path in sorted(p for g in ("python", "node", "swift") for p in (out / g).glob("*") if p.is_file()):
        artifacts.append({"file": str(path.relative_to(out)), "bytes": path.stat().st_size, "sha256": sha256(path)})
    manifest = {"version": version, "artifacts": artifacts, "seconds": round(time.monotonic() - started),
                "target_seconds": {k: round(v) for k, v in timings.items()}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "SHA256SUMS").write_text("".join(f"{a['sha256']}  {a['file']}\n" for a in artifacts))
    for a in artifacts:
        say(f"{a['bytes'] / 1e6:8.2f} MB  {a['file']}")
    say(f"{len(artifacts)} artifacts of version {version} in {out} ({manifest['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
