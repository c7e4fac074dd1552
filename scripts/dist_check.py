#!/usr/bin/env python3
"""Verifies every artifact `make dist` built (`make dist-check`).

    dist_check.py [--dist dist] [--skip host,bullseye,trixie,arm64,sdist]

Runs what can run here, each in a fresh environment and through the package's own test suite:
the x86_64 wheel on the host, on Debian 11 (glibc 2.31, Python 3.9: the oldest Python the wheel
declares) and on Debian 13 (Python 3.13: the newest Debian has), the aarch64 wheel and
addon in a Debian 12 arm64 chroot under qemu, the host npm tarballs, and a wheel built from the
sdist. Inspects the rest with tools (file format, architecture, minimum OS, exported entry
points, linked libraries). Prints, and writes to dist/check-report.md, one table of what was
run and what was only inspected. Exits non-zero on the first failed check of an artifact,
after finishing the table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import plistlib
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import npm_packages  # noqa: E402
import release_meta  # noqa: E402

CACHE = pathlib.Path.home() / ".cache" / "license-backup"
LICENSES = ["LICENSE-MIT", "LICENSE-APACHE", "THIRD-PARTY-NOTICES.md"]
SIZE_LIMITS = {"wheel": 2_000_000, "node": 4_000_000, "npm-main": 50_000}
HEADER = ROOT / "bindings-swift/Sources/LicenseBackupFFI/LicenseBackupFFI.h"
MACOS_MIN, IOS_MIN, GLIBC_MAX = "11.0", "15.0", (2, 17)

# Expected wheel platform tag -> (Rust target, format, architecture).
WHEELS = {
    "manylinux_2_17_x86_64": ("x86_64-unknown-linux-gnu", "elf", "x86_64"),
    "manylinux_2_17_aarch64": ("aarch64-unknown-linux-gnu", "elf", "aarch64"),
    "musllinux_1_2_x86_64": ("x86_64-unknown-linux-musl", "elf", "x86_64"),
    "macosx_11_0_arm64": ("aarch64-apple-darwin", "macho", "arm64"),
    "macosx_11_0_x86_64": ("x86_64-apple-darwin", "macho", "x86_64"),
    "win_amd64": ("x86_64-pc-windows-gnu", "pe", "x86_64"),
}
TRIPLE_ARCH = {
    "x86_64-unknown-linux-gnu": ("elf", "x86_64"), "aarch64-unknown-linux-gnu": ("elf", "aarch64"),
    "x86_64-unknown-linux-musl": ("elf", "x86_64"), "aarch64-apple-darwin": ("macho", "arm64"),
    "x86_64-apple-darwin": ("macho", "x86_64"), "x86_64-pc-windows-gnu": ("pe", "x86_64"),
}


class CheckFailed(Exception):
    pass


def need(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


def sh(cmd: list[str], **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def run_logged(cmd: list[str], log: pathlib.Path, **kw) -> str:
    """Runs cmd with its output in log; returns the output's last lines, raises on failure."""
    print("+", " ".join(str(c) for c in cmd[:12]), "..." if len(cmd) > 12 else "", flush=True)
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, **kw).returncode
    tail = log.read_text(errors="replace").splitlines()[-40:]
    if rc != 0:
        print("\n".join(tail))
        raise CheckFailed(f"{' '.join(str(c) for c in cmd[:6])} ... exited {rc} (log: {log})")
    return "\n".join(tail)


# ---------------------------------------------------------------- binary inspection (tools)

def inspect_binary(path: pathlib.Path, fmt: str, arch: str, entry: str, *, musl: bool = False,
                   node: bool = False) -> str:
    """Checks format, architecture, minimum OS, the exported entry point and linked libraries;
    returns a one-line summary of what it saw."""
    data = path.read_bytes()[:4]
    if fmt == "elf":
        need(data == b"\x7fELF", f"{path.name}: not an ELF file")
        head = sh(["llvm-readobj", "--file-headers", "--needed-libs", str(path)])
        machine = {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64"}[arch]
        need(machine in head, f"{path.name}: not {machine}")
        needed = re.findall(r"^\s+(lib\S+)$", head, re.M)
        exports = sh(["llvm-nm", "-D", "--defined-only", str(path)])
        need(re.search(rf"\b{entry}$", exports, re.M) is not None, f"{path.name}: {entry} is not exported")
        versions = {tuple(map(int, v)) for v in re.findall(r"GLIBC_(\d+)\.(\d+)", sh(["llvm-objdump", "-T", str(path)]))}
        if musl:
            need(any(n.startswith("libc.musl") or n == "libc.so" for n in needed), f"{path.name}: links no musl libc: {needed}")
            need(not versions, f"{path.name}: has glibc symbol versions")
            floor = "musl"
        else:
            need(max(versions) <= GLIBC_MAX, f"{path.name}: needs GLIBC_{'.'.join(map(str, max(versions)))}")
            floor = f"glibc {'.'.join(map(str, max(versions)))}"
        bad = [n for n in needed if "python" in n or "node" in n]
        need(not bad, f"{path.name}: links {bad}")
        return f"ELF {arch}, {floor}, exports {entry}, links {', '.join(needed)}"
    if fmt == "macho":
        need(data in (b"\xcf\xfa\xed\xfe",), f"{path.name}: not a 64-bit Mach-O file")
        info = sh(["llvm-objdump", "--macho", "--private-headers", str(path)])
        cpu = {"arm64": "ARM64", "x86_64": "X86_64"}[arch]
        need(re.search(rf"MH_MAGIC_64\s+{cpu}\b", info) is not None, f"{path.name}: not {cpu}")
        minos = re.findall(r"cmd LC_BUILD_VERSION.*?minos (\S+)", info, re.S)
        need(minos == [MACOS_MIN], f"{path.name}: minos {minos}, want {MACOS_MIN}")
        dylibs = re.findall(r"cmd LC_LOAD_DYLIB.*?name (\S+)", info, re.S)
        need(all(d.startswith("/usr/lib/") or d.startswith("/System/") for d in dylibs), f"{path.name}: links {dylibs}")
        need("LC_CODE_SIGNATURE" in info or arch == "x86_64", f"{path.name}: arm64 without a code signature")
        # The install name: @rpath and the file's name (the addon's: bindings-node/build.rs;
        # the wheel's module: maturin's), never the absolute path of the build.
        ident = re.findall(r"cmd LC_ID_DYLIB.*?name (\S+)", info, re.S)
        want = f"@rpath/{path.name}" if node else "@rpath/"
        need(len(ident) == 1 and (ident[0] == want if node else ident[0].startswith(want)),
             f"{path.name}: install name {ident}, want {want}{'' if node else '...'}")
        exports = sh(["llvm-nm", "--defined-only", "--extern-only", str(path)])
        need(re.search(rf"\b_{entry}$", exports, re.M) is not None, f"{path.name}: _{entry} is not exported")
        undefined = sh(["llvm-nm", "--undefined-only", str(path)])
        host = "_napi_create_function" if node else "_PyModule_Create2"
        need(host in undefined or not node, f"{path.name}: does not use {host} from the host process")
        return (f"Mach-O {arch}, minos {minos[0]}, install name {ident[0]}, exports _{entry}, "
                f"links {', '.join(os.path.basename(d) for d in dylibs)}")
    if fmt == "pe":
        need(data[:2] == b"MZ", f"{path.name}: not a PE file")
        head = sh(["llvm-readobj", "--file-headers", str(path)])
        need("IMAGE_FILE_MACHINE_AMD64" in head, f"{path.name}: not AMD64")
        info = sh(["llvm-objdump", "-p", str(path)])
        need(re.search(rf"\b{entry}\b", info.split("Export Table")[-1]) is not None, f"{path.name}: {entry} is not exported")
        dlls = sorted(set(re.findall(r"DLL Name: (\S+)", info)))
        pythons = [d for d in dlls if d.lower().startswith("python")]
        if not node:
            need(pythons == ["python3.dll"], f"{path.name}: imports {pythons}, want python3.dll only (abi3)")
        allowed = {"kernel32.dll", "ntdll.dll", "advapi32.dll", "bcrypt.dll", "bcryptprimitives.dll", "ws2_32.dll",
                   "userenv.dll", "msvcrt.dll", "api-ms-win-core-synch-l1-2-0.dll", "python3.dll", "shell32.dll",
                   "ole32.dll", "oleaut32.dll", "crypt32.dll", "secur32.dll"}
        need(all(d.lower() in allowed for d in dlls), f"{path.name}: imports {dlls} (a DLL a Windows machine lacks?)")
        return f"PE32+ x86-64, exports {entry}, imports {', '.join(dlls)}"
    raise ValueError(fmt)


def header_functions() -> list[str]:
    """Every function the uniffi header declares (each has an UNIFFI_FFIDEF_ guard)."""
    text = HEADER.read_text()
    names = sorted(set(re.findall(r"^\S.*?\b((?:uniffi|ffi)_\w+)\s*\(", text, re.M)))
    guards = re.findall(r"^#define UNIFFI_FFIDEF_(?:UNIFFI|FFI)_\w+$", text, re.M)
    need(len(names) == len(guards), f"parsed {len(names)} functions from the header, it guards {len(guards)}")
    return names


def thin_archives(data: bytes) -> dict[str, bytes]:
    """The thin archives of a fat (universal) file, by architecture; a thin file as itself."""
    if data[:4] != b"\xca\xfe\xba\xbe":
        return {"": data}
    (n,) = struct.unpack(">I", data[4:8])
    names = {0x0100000C: "arm64", 0x01000007: "x86_64"}
    out = {}
    for i in range(n):
        cpu, _sub, off, size, _align = struct.unpack(">iiIII", data[8 + 20 * i: 28 + 20 * i])
        out[names.get(cpu, hex(cpu))] = data[off: off + size]
    return out


def inspect_staticlib(data: bytes, arch: str, platform: str, minos: str, tmp: pathlib.Path) -> str:
    lib = tmp / f"{platform}-{arch}.a"
    lib.write_bytes(data)
    # Debian's llvm-nm (LLVM 14) cannot read the LLVM 22 bitcode that some compiler_builtins
    # members carry beside their machine code; it says so and goes on with the other members.
    nm = subprocess.run(["llvm-nm", "--defined-only", "--extern-only", str(lib)], capture_output=True, text=True)
    other_errors = [e for e in nm.stderr.splitlines() if e.strip() and "Opaque pointers are only supported" not in e
                    and not e.endswith(": no symbols")]
    need(not other_errors, f"llvm-nm: {other_errors[:3]}")
    symbols = nm.stdout
    defined = set(re.findall(r" T _(\w+)$", symbols, re.M))
    wanted = header_functions()
    missing = [f for f in wanted if f not in defined]
    need(len(wanted) > 50 and not missing, f"{platform} {arch}: {len(missing)} header functions undefined: {missing[:5]}")
    # The minimum OS of the crate's own object (the archive's members share it).
    members = sh(["llvm-ar", "t", str(lib)]).split()
    obj = next(m for m in members if m.startswith("license_backup_swift"))
    subprocess.run(["llvm-ar", "x", str(lib), obj], cwd=tmp, check=True)
    info = sh(["llvm-objdump", "--macho", "--private-headers", str(tmp / obj)])
    cpu = {"arm64": "ARM64", "x86_64": "X86_64"}[arch]
    need(re.search(rf"MH_MAGIC_64\s+{cpu}\b", info) is not None, f"{platform} {arch}: objects are not {cpu}")
    plat = re.findall(r"platform (\S+)", info)
    seen = re.findall(r"minos (\S+)", info)
    need(seen and seen[0] == minos and plat and plat[0].lower() == platform,
         f"{platform} {arch}: platform {plat} minos {seen}, want {platform} {minos}")
    return f"{platform} {arch} (minos {minos}): all {len(wanted)} header functions defined"


# ---------------------------------------------------------------- the checker

class Checker:
    def __init__(self, dist: pathlib.Path, skip: set[str], wheelhouse: pathlib.Path):
        self.dist, self.skip, self.wheelhouse = dist, skip, wheelhouse
        self.version = release_meta.version()
        self.work = ROOT / "target" / "dist-check"
        self.rows: list[dict] = []
        self.failures: list[str] = []
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="dist-check-"))

    def row(self, artifact: pathlib.Path, target: str, kind: str) -> dict:
        r = {"artifact": artifact.name, "bytes": artifact.stat().st_size, "target": target, "kind": kind,
             "ran": [], "inspected": [], "status": "ok"}
        self.rows.append(r)
        limit = SIZE_LIMITS.get(kind)
        if limit and r["bytes"] > limit:
            self.fail(r, f"{artifact.name}: {r['bytes']} bytes, over the {limit}-byte target")
        return r

    def fail(self, r: dict | None, msg: str) -> None:
        print(f"dist-check: FAILED: {msg}", flush=True)
        self.failures.append(msg)
        if r is not None:
            r["status"] = "FAILED"

    def guarded(self, r: dict, what: str, fn) -> None:
        try:
            fn()
        except (CheckFailed, subprocess.CalledProcessError, StopIteration, ValueError) as e:
            self.fail(r, f"{r['artifact']}: {what}: {e}")

    # ---- Python

    def wheel_contents(self, whl: pathlib.Path, r: dict) -> pathlib.Path:
        with zipfile.ZipFile(whl) as z:
            names = z.namelist()
            dist_info = f"license_backup-{self.version}.dist-info"
            for lic in LICENSES:
                need(f"{dist_info}/licenses/{lic}" in names, f"{lic} missing from the wheel")
            meta = z.read(f"{dist_info}/METADATA").decode()
            need(f"\nVersion: {self.version}\n" in meta, "METADATA version")
            need("License-Expression: MIT OR Apache-2.0" in meta, "METADATA license")
            wheel_meta = z.read(f"{dist_info}/WHEEL").decode()
            need("Root-Is-Purelib: false" in wheel_meta, "WHEEL says purelib")
            libs = [n for n in names if re.match(r"license_backup/_native\.(abi3\.so|pyd|so)$", n)]
            need(len(libs) == 1, f"native library: {libs}")
            need("license_backup/py.typed" in names and "license_backup/_native.pyi" in names, "typing files")
            out = self.tmp / whl.name
            out.mkdir()
            z.extract(libs[0], out)
        r["inspected"].append("contents (licenses, METADATA, typing)")
        return out / libs[0]

    def check_wheel(self, whl: pathlib.Path) -> None:
        m = re.match(rf"license_backup-{re.escape(self.version)}-cp39-abi3-(.+)\.whl$", whl.name)
        tags = m.group(1).split(".") if m else []
        known = [t for t in tags if t in WHEELS]
        r = self.row(whl, "?", "wheel")
        if not m or not known:
            return self.fail(r, f"{whl.name}: unexpected wheel name / platform tag")
        triple, fmt, arch = WHEELS[known[0]]
        r["target"] = triple
        r["tags"] = ".".join(tags)

        def inspect() -> None:
            lib = self.wheel_contents(whl, r)
            r["inspected"].append(inspect_binary(lib, fmt, arch, "PyInit__native", musl="musl" in triple))
            if fmt == "elf" and "musl" not in triple:
                show = sh([str(self.tools / "auditwheel"), "show", str(whl)])
                need(f"manylinux_2_17_{arch}" in show, f"auditwheel show: {show[:300]}")
                r["inspected"].append(f"auditwheel: manylinux_2_17_{arch}")
            elif fmt == "elf":
                # auditwheel on a glibc host, with Debian's musl to resolve against: the only
                # external library must be musl's libc, which zig's musl names `libc.so` (musl's
                # loader maps that reserved name to itself; auditwheel's policy lists only
                # `libc.musl-x86_64.so.1`, so its verdict is not used).
                show = sh([str(self.tools / "auditwheel"), "show", "--ldpaths", "/usr/lib/x86_64-linux-musl", str(whl)])
                external = re.search(r"required by the wheel:\s*(\{.*?\})", show, re.S)
                libs = json.loads(external.group(1)) if external else {}
                need(list(libs) == ["libc.so"] and "no external versioned symbols" in show, f"auditwheel show: {show[:400]}")
                r["inspected"].append("auditwheel: only musl's libc external, no versioned symbols")
        self.guarded(r, "inspection", inspect)
        if triple == "x86_64-unknown-linux-gnu":
            if "host" not in self.skip:
                self.guarded(r, "host suite", lambda: self.python_suite(r, whl, "host"))
            if "bullseye" not in self.skip:
                self.guarded(r, "Debian 11 suite", lambda: self.python_suite(r, whl, "bullseye-amd64"))
            if "trixie" not in self.skip:
                self.guarded(r, "Debian 13 suite", lambda: self.python_suite(r, whl, "trixie-amd64"))
        if triple == "aarch64-unknown-linux-gnu" and "arm64" not in self.skip:
            self.guarded(r, "arm64 suite", lambda: self.python_suite(r, whl, "bookworm-arm64"))

    def wheelhouse_for(self, where: str) -> tuple[pathlib.Path, pathlib.Path]:
        """The test requirements (file, wheelhouse) for a chroot's Python, downloaded once."""
        if where == "host":
            return ROOT / "bindings-python/requirements-test.txt", self.wheelhouse
        req = ROOT / "bindings-python" / ("requirements-test-py39.txt" if where == "bullseye-amd64" else "requirements-test.txt")
        py, plat = {"bullseye-amd64": ("3.9", "manylinux2014_x86_64"), "trixie-amd64": ("3.13", "manylinux2014_x86_64"),
                    "bookworm-arm64": ("3.11", "manylinux2014_aarch64")}[where]
        key = hashlib.sha256(req.read_bytes() + where.encode()).hexdigest()[:12]
        house = CACHE / "wheelhouse" / f"{where}-{key}"
        if not (house / ".stamp").exists():
            shutil.rmtree(house, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                            "--only-binary=:all:", "--python-version", py, "--platform", plat, "-d", str(house),
                            "-r", str(req)], check=True)
            (house / ".stamp").touch()
        return req, house

    def chroot(self, name: str, binds: list[pathlib.Path], script: str) -> list[str]:
        return [str(HERE / "test-chroot.sh"), "run", name, *[a for b in binds for a in ("-B", str(b))],
                "-C", str(binds[0]), "--", "sh", "-ec", script]

    def host_service(self, work: pathlib.Path) -> pathlib.Path:
        """A wrapper in `work` that runs the host's license-backup-service with the host's C
        library (its loader and the libraries `ldd` lists, copied into `work/hostlib`)."""
        binary = ROOT / "target/debug/license-backup-service"
        need(binary.exists(), f"{binary} is missing: cargo build -p license-backup-service")
        lib = work / "hostlib"
        lib.mkdir(parents=True, exist_ok=True)
        loader = None
        for path in re.findall(r"(/\S+\.so[.\d]*)", sh(["ldd", str(binary)])):
            shutil.copy(path, lib)
            if "ld-linux" in path:
                loader = pathlib.Path(path).name
        need(loader is not None, "ldd names no loader for the service")
        wrapper = work / "license-backup-service"
        wrapper.write_text(f'#!/bin/sh\nexec {lib}/{loader} --library-path {lib} {binary} "$@"\n')
        wrapper.chmod(0o755)
        return wrapper

    def python_suite(self, r: dict, whl: pathlib.Path, where: str) -> None:
        req, house = self.wheelhouse_for(where)
        work = self.work / f"py-{where}"
        shutil.rmtree(work, ignore_errors=True)
        (work / "run").mkdir(parents=True)
        # The suite starts the networked service (the host's x86_64 debug build, linked against
        # the host's glibc): in a chroot it runs with the host's loader and C library, copied
        # beside it (Debian 11's glibc is older; the arm64 chroot has no x86_64 loader at all,
        # and the host's kernel runs the x86_64 service natively, outside qemu). What the suite
        # tests is the wheel, on the chroot's own Python and C library.
        service = f"LICENSE_BACKUP_SERVICE={self.host_service(work)} " if where != "host" else ""
        script = (
            f"python3 -m venv {work}/venv\n"
            f"{work}/venv/bin/python -m pip install --quiet --disable-pip-version-check --no-index "
            f"--find-links {house} -r {req} {whl}\n"
            f"cd {work}/run\n"
            f"{service}LICENSE_BACKUP_REPO={ROOT} {work}/venv/bin/python -m pytest -p no:cacheprovider -q "
            f"--rootdir {ROOT}/bindings-python/tests {ROOT}/bindings-python/tests\n"
        )
        start = time.monotonic()
        if where == "host":
            tail = run_logged(["sh", "-ec", script], work.parent / f"py-{where}.log")
        else:
            tail = run_logged(self.chroot(where, [work, ROOT, whl.parent, house], script), work.parent / f"py-{where}.log")
        summary = [line for line in tail.splitlines() if re.search(r"\d+ passed", line)]
        need(bool(summary), "no pytest summary")
        label = {"host": f"host (Python {sys.version_info[0]}.{sys.version_info[1]})",
                 "bullseye-amd64": "Debian 11 (glibc 2.31, Python 3.9)",
                 "trixie-amd64": "Debian 13 (Python 3.13)",
                 "bookworm-arm64": "Debian 12 arm64 under qemu (Python 3.11)"}[where]
        r["ran"].append(f"{label}: pytest {summary[-1].strip('= ')} ({time.monotonic() - start:.0f} s)")

    def check_sdist(self, sdist: pathlib.Path) -> None:
        r = self.row(sdist, "source", "sdist")

        def contents() -> None:
            with tarfile.open(sdist) as t:
                names = t.getnames()
            base = f"license_backup-{self.version}/"
            for f in ["pyproject.toml", "Cargo.lock", "Cargo.toml", *LICENSES]:
                need(any(n == base + f or n.endswith("/" + f) for n in names), f"{f} missing from the sdist")
            need(any(n.endswith("core/src/lib.rs") for n in names), "the core's source is missing")
            r["inspected"].append("contents (Cargo.lock, the core's source, licenses)")
        self.guarded(r, "contents", contents)
        if "sdist" in self.skip:
            return

        def build_and_test() -> None:
            out = self.work / "sdist-wheel"
            shutil.rmtree(out, ignore_errors=True)
            env = dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target" / "dist-sdist"),
                       PATH=f"{self.tools}:{os.environ['PATH']}")
            start = time.monotonic()
            run_logged(["nice", "-n", "19", str(self.tools / "python"), "-m", "pip", "wheel", "--no-deps",
                        "--no-build-isolation", "-w", str(out), str(sdist)], self.work / "sdist-build.log", env=env)
            (whl,) = out.glob("*.whl")
            r["ran"].append(f"built from source with pip + cargo ({time.monotonic() - start:.0f} s): {whl.name}")
            self.python_suite(r, whl, "host")
        self.guarded(r, "build from source", build_and_test)

    # ---- Node

    def npm_manifest(self, tgz: pathlib.Path) -> tuple[dict, list[str]]:
        with tarfile.open(tgz) as t:
            names = [n.removeprefix("package/") for n in t.getnames()]
            pkg = json.load(t.extractfile("package/package.json"))
        return pkg, names

    def check_npm(self, node_dir: pathlib.Path) -> None:
        main_pkg = json.loads((ROOT / "bindings-node/package.json").read_text())
        targets = main_pkg["napi"]["targets"]
        main_tgz = node_dir / f"license-backup-{self.version}.tgz"
        r = self.row(main_tgz, "all", "npm-main")

        def main_contents() -> None:
            pkg, names = self.npm_manifest(main_tgz)
            need(pkg["version"] == self.version, "version")
            need(not [n for n in names if n.endswith(".node")], "the main package ships an addon")
            for lic in LICENSES[:2]:
                need(lic in names, f"{lic} missing")
            want = {npm_packages.platform_name(t): self.version for t in targets}
            need(pkg.get("optionalDependencies") == want, f"optionalDependencies {pkg.get('optionalDependencies')}")
            need("devDependencies" not in pkg and "scripts" not in pkg, "devDependencies/scripts shipped")
            r["inspected"].append(f"contents; optionalDependencies: {len(want)} platform packages at {self.version}")
        self.guarded(r, "contents", main_contents)
        platform_tgz, platform_rows = {}, {}
        for triple in targets:
            name = npm_packages.platform_name(triple)
            tgz = node_dir / f"{name}-{self.version}.tgz"
            if not tgz.exists():
                self.fail(None, f"{tgz.name} is missing")
                continue
            platform_tgz[triple] = tgz
            pr = platform_rows[triple] = self.row(tgz, triple, "npm-platform")
            self.guarded(pr, "inspection", lambda tgz=tgz, triple=triple, pr=pr: self.inspect_platform(tgz, triple, pr))
        host = "x86_64-unknown-linux-gnu"
        if "host" not in self.skip and host in platform_tgz:
            self.guarded(r, "host suite", lambda: self.node_suite(r, main_tgz, platform_tgz[host], "host",
                                                                   platform_rows[host]))
        arm = "aarch64-unknown-linux-gnu"
        if "arm64" not in self.skip and arm in platform_tgz:
            self.guarded(r, "arm64 suite", lambda: self.node_suite(r, main_tgz, platform_tgz[arm], "bookworm-arm64",
                                                                    platform_rows[arm]))

    def inspect_platform(self, tgz: pathlib.Path, triple: str, r: dict) -> None:
        pkg, names = self.npm_manifest(tgz)
        _suffix, os_name, cpu, libc = npm_packages.PLATFORMS[triple]
        need(pkg["version"] == self.version, "version")
        need(pkg["os"] == [os_name] and pkg["cpu"] == [cpu] and pkg.get("libc") == ([libc] if libc else None),
             f"os/cpu/libc {pkg.get('os')} {pkg.get('cpu')} {pkg.get('libc')}")
        node_file = npm_packages.addon_file(triple)
        need(pkg["main"] == node_file and node_file in names, f"main {pkg['main']}")
        for lic in LICENSES:
            need(lic in names, f"{lic} missing")
        out = self.tmp / tgz.name
        out.mkdir()
        with tarfile.open(tgz) as t:
            t.extract(f"package/{node_file}", out, filter="data")
        addon = out / "package" / node_file
        r["node_bytes"] = addon.stat().st_size
        if addon.stat().st_size > SIZE_LIMITS["node"]:
            self.fail(r, f"{node_file}: {addon.stat().st_size} bytes, over the 4 MB target")
        fmt, arch = TRIPLE_ARCH[triple]
        r["inspected"].append(f"package.json (os {os_name}, cpu {cpu}{', libc ' + libc if libc else ''})")
        r["inspected"].append(inspect_binary(addon, fmt, arch, "napi_register_module_v1", musl="musl" in triple, node=True))

    def node_suite(self, r: dict, main_tgz: pathlib.Path, plat_tgz: pathlib.Path, where: str, pr: dict) -> None:
        work = self.work / f"node-{where}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "package.json").write_text('{"name": "license-backup-fresh-install", "private": true}\n')
        # npm runs on the host: it installs for arm64 as told, --force past its own platform check
        # (EBADPLATFORM); node then runs inside the arm64 chroot.
        flags = ["--force", "--cpu=arm64", "--os=linux", "--libc=glibc"] if where == "bookworm-arm64" else []
        # The suite's own test dependencies (fast-check, the TypeScript compilers, @types/node),
        # at the versions bindings-node pins, from npm's cache (make node-tools filled it).
        dev = json.loads((ROOT / "bindings-node/package.json").read_text())["devDependencies"]
        test_deps = [f"{name}@{dev[name]}" for name in ("fast-check", "typescript", "typescript-7", "@types/node")]
        if where == "bookworm-arm64":
            # TypeScript 7's compiler is a native binary in a package per platform (an optional
            # dependency): the host's npm cache holds only the x64 one, so the arm64 one is
            # added to the cache (from the npm registry) and installed by name.
            ts7 = json.loads((ROOT / "bindings-node/node_modules/typescript-7/package.json").read_text())
            arm = f"@typescript/typescript-linux-arm64@{ts7['optionalDependencies']['@typescript/typescript-linux-arm64']}"
            run_logged(["npm", "cache", "add", "--loglevel=error", arm], self.work / f"node-{where}-cache.log")
            test_deps.append(arm)
        run_logged(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--offline", *flags,
                    str(main_tgz), str(plat_tgz), *test_deps], self.work / f"node-{where}-install.log", cwd=work)
        shutil.copytree(ROOT / "bindings-node/test", work / "test")
        shutil.copytree(ROOT / "examples/node", work / "example")
        plat_name = json.loads(tarfile.open(plat_tgz).extractfile("package/package.json").read())["name"]
        probe = ("const lb = require('license-backup'); const m = Object.keys(require.cache)"
                 ".filter((k) => k.endsWith('.node')); console.log(JSON.stringify(m))")
        tests = " ".join(f"test/{p.name}" for p in sorted((work / "test").glob("*.test.js")))
        service = f"LICENSE_BACKUP_SERVICE={self.host_service(work)} " if where != "host" else ""
        script = (f"cd {work}\nnode -e \"{probe}\"\n"
                  f"{service}LB_REPO={ROOT} node --test --test-reporter=spec {tests}\n"
                  f"EXAMPLE_DIR={work}/example-run node example/menu-backup.js > /dev/null\n")
        start = time.monotonic()
        log = self.work / f"node-{where}.log"
        if where == "host":
            tail = run_logged(["sh", "-ec", script], log)
        else:
            tail = run_logged(self.chroot(where, [work, ROOT], script), log)
        loaded = json.loads(log.read_text().splitlines()[0])
        need(len(loaded) == 1 and f"/node_modules/{plat_name}/" in loaded[0], f"require() loaded {loaded}")
        passed = re.search(r"ℹ pass (\d+)", tail)
        failed = re.search(r"ℹ fail (\d+)", tail)
        need(passed is not None and failed is not None and failed.group(1) == "0", "node --test summary")
        label = {"host": f"host (Node {sh(['node', '--version']).strip()})",
                 "bookworm-arm64": "Debian 12 arm64 under qemu (Node 18)"}[where]
        ran = (f"{label}: require() loaded {plat_name}; node --test {passed.group(1)} passed, 0 failed; "
               f"example ran ({time.monotonic() - start:.0f} s)")
        r["ran"].append(ran)
        pr["ran"].append(ran)

    # ---- Swift

    def check_swift(self, swift_dir: pathlib.Path) -> None:
        zip_path = swift_dir / "LicenseBackup.xcframework.zip"
        r = self.row(zip_path, "macOS arm64+x86_64, iOS arm64", "xcframework")

        def inspect() -> None:
            tmp = self.tmp / "xcf"
            with zipfile.ZipFile(zip_path) as z:
                z.extractall(tmp)
            xcf = tmp / "LicenseBackup.xcframework"
            plist = plistlib.loads((xcf / "Info.plist").read_bytes())
            need(plist["CFBundlePackageType"] == "XFWK", "Info.plist package type")
            libs = {lib["LibraryIdentifier"]: lib for lib in plist["AvailableLibraries"]}
            need(set(libs) == {"macos-arm64_x86_64", "ios-arm64"}, f"slices {sorted(libs)}")
            for ident, lib in libs.items():
                d = xcf / ident
                need((d / lib["HeadersPath"] / "LicenseBackupFFI.h").read_bytes() == HEADER.read_bytes(), f"{ident}: header")
                need("module LicenseBackupFFI" in (d / lib["HeadersPath"] / "module.modulemap").read_text(), f"{ident}: module map")
                thin = thin_archives((d / lib["LibraryPath"]).read_bytes())
                if list(thin) == [""] and len(lib["SupportedArchitectures"]) == 1:
                    # a thin archive: inspect_staticlib checks its objects' architecture
                    thin = {lib["SupportedArchitectures"][0]: thin[""]}
                need(sorted(thin) == sorted(lib["SupportedArchitectures"]), f"{ident}: architectures {sorted(thin)}")
                if len(thin) > 1:  # the universal header, read by llvm's tools too
                    fat = sh(["llvm-objdump", "--macho", "--universal-headers", str(d / lib["LibraryPath"])])
                    for arch in thin:
                        need(re.search(rf"cputype CPU_TYPE_{'ARM64' if arch == 'arm64' else 'X86_64'}\b", fat) is not None,
                             f"{ident}: llvm-objdump sees no {arch} in the universal archive")
                platform = lib["SupportedPlatform"]
                for arch, data in thin.items():
                    r["inspected"].append(inspect_staticlib(data, arch, platform, MACOS_MIN if platform == "macos" else IOS_MIN, tmp))
            checksum = hashlib.sha256(zip_path.read_bytes()).hexdigest()
            r["checksum"] = checksum
            in_manifest = checksum in (ROOT / "bindings-swift/Package.swift").read_text()
            r["inspected"].append(f"zip checksum {checksum[:16]}… ({'in' if in_manifest else 'not yet in'} Package.swift)")
        self.guarded(r, "inspection", inspect)

    # ---- all

    def run(self) -> int:
        self.tools = pathlib.Path(sh([str(HERE / "build-tools.sh"), "dist"]).strip().splitlines()[-1])
        if not self.skip >= {"bullseye", "trixie", "arm64"}:
            for name, key in (("bullseye-amd64", "bullseye"), ("trixie-amd64", "trixie"), ("bookworm-arm64", "arm64")):
                if key not in self.skip:
                    subprocess.run([str(HERE / "test-chroot.sh"), "ensure", name], check=True, stdout=subprocess.DEVNULL)
        manifest = json.loads((self.dist / "manifest.json").read_text())
        need(manifest["version"] == self.version, f"dist/ is of version {manifest['version']}, the workspace says {self.version}")
        for a in manifest["artifacts"]:
            p = self.dist / a["file"]
            need(hashlib.sha256(p.read_bytes()).hexdigest() == a["sha256"], f"{a['file']} changed since make dist")
        py = self.dist / "python"
        wheels = sorted(py.glob("*.whl"))
        seen = {t for w in wheels for t in WHEELS if t in w.name}
        for missing in sorted(set(WHEELS) - seen):
            self.fail(None, f"no {missing} wheel")
        for whl in wheels:
            self.check_wheel(whl)
        for sdist in sorted(py.glob("*.tar.gz")) or [None]:
            if sdist is None:
                self.fail(None, "no sdist")
            else:
                self.check_sdist(sdist)
        self.check_npm(self.dist / "node")
        self.check_swift(self.dist / "swift")
        report = self.report()
        (self.dist / "check-report.md").write_text(report)
        print(report)
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.failures:
            print(f"dist-check: {len(self.failures)} check(s) failed", file=sys.stderr)
            return 1
        print(f"dist-check: all {len(self.rows)} artifacts verified")
        return 0

    def report(self) -> str:
        lines = ["| artifact | size | target | ran here | only inspected | status |", "|---|---|---|---|---|---|"]
        for r in self.rows:
            size = f"{r['bytes'] / 1e6:.2f} MB" if r["bytes"] > 100_000 else f"{r['bytes'] / 1e3:.1f} KB"
            if "node_bytes" in r:
                size += f" (.node {r['node_bytes'] / 1e6:.2f} MB)"
            ran = "<br>".join(r["ran"]) or "—"
            inspected = "<br>".join(r["inspected"]) or "—"
            lines.append(f"| `{r['artifact']}` | {size} | {r['target']} | {ran} | {inspected} | {r['status']} |")
        lines.append("")
        lines += [f"* FAILED: {f}" for f in self.failures]
        return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dist", type=pathlib.Path, default=ROOT / "dist")
    ap.add_argument("--skip", default="", help="comma-separated: host, bullseye, trixie, arm64, sdist")
    ap.add_argument("--wheelhouse", type=pathlib.Path, default=ROOT / ".cache/python/wheelhouse")
    args = ap.parse_args()
    checker = Checker(args.dist.resolve(), set(filter(None, args.skip.split(","))), args.wheelhouse)
    try:
        return checker.run()
    except CheckFailed as e:
        print(f"dist-check: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
