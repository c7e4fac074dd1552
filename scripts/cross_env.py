#!/usr/bin/env python3
"""The C toolchain of every release target: zig (through cargo-zigbuild's argument filter) for
Linux and Apple, Debian's mingw-w64 for Windows, with the compatibility floors pinned.

    cross_env.py exec TRIPLE -- CMD ARGS...    run CMD with the target's environment
    cross_env.py env TRIPLE                    print it (shell syntax)

The environment sets CC_<triple>, AR_<triple> and CARGO_TARGET_<TRIPLE>_LINKER to wrappers
with a fixed path, so maturin, the napi CLI and cargo see the same compiler and share one
build of the core per target and profile. Build with it in a target folder of its own (make
dist: target/dist; make test's host packages: target/host-dist): the host's linker differs
from a plain `cargo build`'s, and sharing a folder would rebuild everything at each switch. The floors:

    Linux glibc      2.17 (manylinux2014; Node 18 itself needs 2.28)
    Linux musl       1.2 (zig's musl, linked statically into nothing: the addon links libc.so)
    macOS            11.0 (arm64 and x86_64)
    iOS              15.0 (static library only: zig has no iOS SDK, nothing is linked)

Tools come from scripts/build-tools.sh (venv with ziglang and cargo-zigbuild).
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys
import tomllib

import apple_stubs

HERE = pathlib.Path(__file__).resolve().parent
MACOS_MIN = "11.0"
IOS_MIN = "15.0"
GLIBC_MIN = "2.17"

ZIG_TARGETS = {
    "x86_64-unknown-linux-gnu": f"x86_64-linux-gnu.{GLIBC_MIN}",
    "aarch64-unknown-linux-gnu": f"aarch64-linux-gnu.{GLIBC_MIN}",
    "x86_64-unknown-linux-musl": "x86_64-linux-musl",
    "aarch64-apple-darwin": f"aarch64-macos.{MACOS_MIN}",
    "x86_64-apple-darwin": f"x86_64-macos.{MACOS_MIN}",
    "aarch64-apple-ios": f"aarch64-ios.{IOS_MIN}",
}
MINGW = {"x86_64-pc-windows-gnu": "x86_64-w64-mingw32"}
# The bundled SQLite's options for every shipped binary (libsqlite3-sys reads LIBSQLITE3_FLAGS
# after its defaults, so -U takes a default back): without full-text search, R*Tree, JSON, the
# dbstat table, extension loading, column metadata, STAT4, soundex, declared types, deprecated
# interfaces, the progress callback and shared cache. The library uses none of them (the OMIT
# ones are those SQLite documents as safe with the amalgamation); make test's host packages
# build with the same SQLite, so its suites run against it.
SQLITE_FLAGS = " ".join([
    "-USQLITE_ENABLE_FTS3", "-USQLITE_ENABLE_FTS3_PARENTHESIS", "-USQLITE_ENABLE_FTS5",
    "-USQLITE_ENABLE_RTREE", "-USQLITE_ENABLE_DBSTAT_VTAB", "-USQLITE_ENABLE_JSON1", "-DSQLITE_OMIT_JSON",
    "-USQLITE_ENABLE_LOAD_EXTENSION", "-DSQLITE_OMIT_LOAD_EXTENSION",
    "-USQLITE_ENABLE_COLUMN_METADATA", "-USQLITE_ENABLE_STAT4", "-USQLITE_SOUNDEX",
    "-DSQLITE_OMIT_DECLTYPE", "-DSQLITE_OMIT_DEPRECATED", "-DSQLITE_OMIT_PROGRESS_CALLBACK",
    "-DSQLITE_OMIT_SHARED_CACHE",
])


def tools_bin() -> pathlib.Path:
    out = subprocess.run([str(HERE / "build-tools.sh"), "python"], check=True, capture_output=True, text=True)
    return pathlib.Path(out.stdout.strip().splitlines()[-1])


def write_if_changed(path: pathlib.Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)


def host_triple() -> str:
    out = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
    return re.search(r"^host: (\S+)$", out, re.M).group(1)


def target_env(triple: str) -> dict[str, str]:
    """The variables to add for building `triple` (PATH first gets the tools' bin).

    The host's variables are set too, whatever the target: cargo links build scripts and proc
    macros with the host target's linker when that is configured, and a linker that differs
    from one build to the next rebuilds everything in the target folder."""
    env = _target_env(triple)
    host = host_triple()
    if host != triple and host in ZIG_TARGETS:
        env.update({k: v for k, v in _target_env(host).items() if k != "PATH"})
    return env


def _target_env(triple: str) -> dict[str, str]:
    bindir = tools_bin()
    env = {"PATH": f"{bindir}:{os.environ.get('PATH', '')}", "LIBSQLITE3_FLAGS": SQLITE_FLAGS}
    key = triple.replace("-", "_")
    if triple in MINGW:
        prefix = MINGW[triple]
        env[f"CC_{key}"] = f"{prefix}-gcc-posix"
        env[f"AR_{key}"] = f"{prefix}-ar"
        env[f"CARGO_TARGET_{key.upper()}_LINKER"] = f"{prefix}-gcc-posix"
        # napi-build insists on a libnode.dll to link the GNU addon with. The addon takes no
        # symbol from it (napi's dyn-symbols: N-API is looked up in the host process), so an
        # empty DLL serves, and the linker records no import of it (make dist-check checks).
        stub = bindir.parent / "cross" / triple / "libnode"
        if not (stub / "libnode.dll").exists():
            stub.mkdir(parents=True, exist_ok=True)
            (stub / "empty.c").write_text("/* no symbols: see scripts/cross_env.py */\n")
            subprocess.run([f"{prefix}-gcc-posix", "-shared", "-o", str(stub / "libnode.dll"), str(stub / "empty.c")],
                           check=True)
        env["LIBNODE_PATH"] = str(stub)
        return env
    if triple not in ZIG_TARGETS:
        sys.exit(f"cross_env: no toolchain for {triple}")
    zig_target = ZIG_TARGETS[triple]
    wrappers = bindir.parent / "cross" / triple
    extra = ""
    if triple.endswith("-apple-ios"):
        # zig ships no iOS SDK: the C sources (SQLite, ring) only need libc headers, which the
        # generic Darwin ones provide; an empty SDKROOT keeps cc-rs from asking xcrun.
        libc = subprocess.run([str(bindir / "python"), "-c", "import ziglang, os; print(os.path.dirname(ziglang.__file__))"],
                              check=True, capture_output=True, text=True).stdout.strip()
        extra = f" -isystem {libc}/lib/libc/include/any-darwin-any"
        sdk = wrappers / "empty-sdk"
        sdk.mkdir(parents=True, exist_ok=True)
        env["SDKROOT"] = str(sdk)
    if triple.endswith("-apple-darwin"):
        # zig carries no framework: link stubs generated from the -sys crates (apple_stubs.py).
        extra = f" -F {apple_stubs.write_stubs(triple, wrappers / 'frameworks')}"
    # cargo-zigbuild's `zig cc` drops the flags zig does not take (--target=, -arch, ...).
    write_if_changed(wrappers / "cc", (
        "#!/bin/sh\n"
        f"export CARGO_ZIGBUILD_ZIG_COMMAND={bindir}/python CARGO_ZIGBUILD_ZIG_COMMAND_ARGS='-m ziglang'\n"
        f'exec "{bindir}/cargo-zigbuild" zig cc -- -fno-sanitize=all -target {zig_target}{extra} "$@"\n'
    ))
    write_if_changed(wrappers / "ar", f'#!/bin/sh\nexec "{bindir}/zig" ar "$@"\n')
    env[f"CC_{key}"] = str(wrappers / "cc")
    env[f"AR_{key}"] = str(wrappers / "ar")
    env[f"CARGO_TARGET_{key.upper()}_LINKER"] = str(wrappers / "cc")
    if triple.endswith("-musl"):
        # A cdylib on musl links libc dynamically. The napi CLI adds this flag through RUSTFLAGS
        # unless it is there already, and RUSTFLAGS replaces .cargo/config.toml's rustflags: so
        # both go here, and maturin and napi build with the same flags.
        with open(HERE.parent / ".cargo" / "config.toml", "rb") as f:
            flags = tomllib.load(f).get("build", {}).get("rustflags", [])
        env["RUSTFLAGS"] = " ".join([*flags, "-C", "target-feature=-crt-static"])
    if "apple-darwin" in triple:
        env["MACOSX_DEPLOYMENT_TARGET"] = MACOS_MIN
    if triple.endswith("-apple-ios"):
        env["IPHONEOS_DEPLOYMENT_TARGET"] = IOS_MIN
    return env


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "env":
        for k, v in target_env(sys.argv[2]).items():
            print(f"export {k}={shlex.quote(v)}")
        return 0
    if len(sys.argv) >= 5 and sys.argv[1] == "exec" and sys.argv[3] == "--":
        env = dict(os.environ)
        env.update(target_env(sys.argv[2]))
        os.execvpe(sys.argv[4], sys.argv[4:], env)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
