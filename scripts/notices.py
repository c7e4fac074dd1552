#!/usr/bin/env python3
"""THIRD-PARTY-NOTICES.md: the licenses of everything the shipped libraries contain.

    notices.py write    regenerate it (cargo-about, from Cargo.lock; a few minutes)
    notices.py check    fail when the resolved dependency graph (packages, features) or the
                        generator changed since it was generated
                        (a second: what `make test` runs)
    notices.py verify   regenerate into memory and compare with the committed file (make dist)

cargo-about (installed once into ~/.cache/license-backup/tools by build-tools.sh) finds, for
each binding crate (the Python extension, the Node addon, the Swift library), every crate it
links on the release targets (about.toml) and each license's text in the crate's own files; this
script merges the three lists. The C code that crates compile in (SQLite through
libsqlite3-sys's `bundled` feature, ring's BoringSSL-derived code) is added from the crates'
own sources, at the versions in Cargo.lock.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / "THIRD-PARTY-NOTICES.md"
BINDINGS = ["bindings-python", "bindings-node", "bindings-swift"]
STAMP = re.compile(r"^<!-- inputs: ([0-9a-f]{64}) -->$", re.M)


def inputs_digest() -> str:
    """What the file is generated from: the resolved dependency graph (every package with its
    enabled features and dependencies, as `cargo metadata` resolves Cargo.lock and the
    manifests), the configuration and this script. Editing a manifest's metadata (description,
    repository, ...) does not change it; adding a dependency or a feature does."""
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--manifest-path", str(ROOT / "Cargo.toml")],
        check=True, capture_output=True, text=True).stdout)
    graph = sorted(
        (node["id"].rsplit("#", 1)[-1] if "registry+" in node["id"] else node["id"].rsplit("/", 1)[-1],
         sorted(node.get("features", [])),
         sorted(d["pkg"].rsplit("#", 1)[-1] for d in node.get("deps", [])))
        for node in meta["resolve"]["nodes"])
    h = hashlib.sha256()
    h.update(json.dumps(graph).encode())
    for path in (ROOT / "about.toml", pathlib.Path(__file__)):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def cargo_about() -> pathlib.Path:
    out = subprocess.run([str(HERE / "build-tools.sh"), "about"], check=True, capture_output=True, text=True)
    return pathlib.Path(out.stdout.strip().splitlines()[-1]) / "cargo-about"


def crate_licenses(about: pathlib.Path, binding: str) -> dict:
    out = subprocess.run(
        [str(about), "generate", "--offline", "--locked", "--fail", "--format", "json",
         "-c", str(ROOT / "about.toml"), "-m", str(ROOT / binding / "Cargo.toml")],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def bundled_c() -> str:
    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--locked"], cwd=ROOT,
                                     check=True, capture_output=True, text=True).stdout)
    (pkg,) = [p for p in meta["packages"] if p["name"] == "libsqlite3-sys"]
    header = (pathlib.Path(pkg["manifest_path"]).parent / "sqlite3" / "sqlite3.h").read_text(errors="replace")
    version = re.search(r'#define SQLITE_VERSION\s+"([^"]+)"', header).group(1)
    blessing = re.search(r"^\*\* The author disclaims copyright.*?(?=^\*{6,})", header, re.S | re.M)
    text = "\n".join(line.lstrip("*").strip() for line in blessing.group(0).splitlines()) if blessing else ""
    return (
        "## C code compiled into the libraries\n\n"
        f"### SQLite {version}\n\n"
        f"Compiled in by `libsqlite3-sys {pkg['version']}` (feature `bundled`). SQLite is in the public "
        "domain; its source carries this dedication:\n\n```text\n" + text.strip() + "\n```\n\n"
        "### ring's C and assembly code\n\n"
        "`ring` compiles C and assembly code derived from BoringSSL; their license texts (ISC, and "
        "the OpenSSL and SSLeay notices they carry) are listed above under the licenses `ring` uses.\n"
    )


def generate() -> str:
    about = cargo_about()
    licenses: dict[tuple[str, str], set[str]] = {}
    for binding in BINDINGS:
        data = crate_licenses(about, binding)
        for lic in data["licenses"]:
            used = {f"{u['crate']['name']} {u['crate']['version']}" for u in lic["used_by"]
                    if not u["crate"]["name"].startswith("license-backup")}
            if used:
                licenses.setdefault((lic["id"], lic["text"].strip()), set()).update(used)
    by_id: dict[str, int] = {}
    for (lid, _), crates in licenses.items():
        by_id[lid] = by_id.get(lid, 0) + len(crates)
    lines = [
        "# Third-party notices",
        "",
        "The license-backup libraries (the Python extension, the Node addon, the Swift library) contain",
        "the crates below, compiled in, and the C code listed at the end. Generated by",
        "[cargo-about](https://github.com/EmbarkStudios/cargo-about) from `Cargo.lock` with",
        "`make notices` (scripts/notices.py); do not edit.",
        "",
        f"<!-- inputs: {inputs_digest()} -->",
        "",
        "## Licenses",
        "",
        *[f"* {lid}: {n} crate(s)" for lid, n in sorted(by_id.items())],
        "",
    ]
    for (lid, text), crates in sorted(licenses.items(), key=lambda kv: (kv[0][0], sorted(kv[1]))):
        lines += [f"### {lid}", "", "Used by: " + ", ".join(f"`{c}`" for c in sorted(crates)), "",
                  "```text", text, "```", ""]
    return "\n".join(lines) + "\n" + bundled_c()


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else "check"
    if cmd == "write":
        text = generate()
        OUT.write_text(text)
        print(f"notices: wrote {OUT.name} ({len(text)} bytes)")
        return 0
    if cmd == "check":
        m = STAMP.search(OUT.read_text()) if OUT.exists() else None
        if not m or m.group(1) != inputs_digest():
            print("notices: THIRD-PARTY-NOTICES.md is stale (the dependency graph, about.toml or "
                  "scripts/notices.py changed): run `make notices` and commit it", file=sys.stderr)
            return 1
        print("notices: THIRD-PARTY-NOTICES.md was generated from this Cargo.lock")
        return 0
    if cmd == "verify":
        if not OUT.exists() or OUT.read_text() != generate():
            print("notices: THIRD-PARTY-NOTICES.md differs from what cargo-about generates now: "
                  "run `make notices` and commit it", file=sys.stderr)
            return 1
        print("notices: THIRD-PARTY-NOTICES.md is what cargo-about generates from Cargo.lock")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
