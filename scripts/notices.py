#!/usr/bin/env python3
"""THIRD-PARTY-NOTICES.md: the licenses of everything the shipped libraries contain.

    notices.py write    regenerate it (cargo-about, from Cargo.lock)
    notices.py check    fail when the committed file differs from what is generated now

cargo-about (installed once into ~/.cache/license-backup/tools by build-tools.sh) lists every
crate the three binding crates link and each license's text; the C code compiled in by crates
(SQLite through libsqlite3-sys's `bundled` feature, ring's BoringSSL-derived code) is added
from the crates' own sources, with the versions in Cargo.lock.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = ROOT / "THIRD-PARTY-NOTICES.md"
BINDINGS = ["license-backup-python", "license-backup-node", "license-backup-swift"]


def package_dir(meta: dict, name: str) -> pathlib.Path:
    (pkg,) = [p for p in meta["packages"] if p["name"] == name]
    return pathlib.Path(pkg["manifest_path"]).parent


def bundled_c(meta: dict) -> str:
    sqlite_dir = package_dir(meta, "libsqlite3-sys") / "sqlite3"
    header = (sqlite_dir / "sqlite3.h").read_text(errors="replace")
    version = re.search(r'#define SQLITE_VERSION\s+"([^"]+)"', header).group(1)
    blessing = re.search(r"\*\* The author disclaims copyright.*?\*{6,}", header, re.S)
    text = "\n".join(line.lstrip("*").strip() for line in blessing.group(0).splitlines()[:-1]) if blessing else ""
    return (
        "\n## C code compiled into the libraries\n\n"
        f"### SQLite {version}\n\n"
        "Compiled in by `libsqlite3-sys` (feature `bundled`). SQLite is in the public domain; its "
        "source carries this dedication:\n\n```text\n" + text.strip() + "\n```\n\n"
        "### ring's C and assembly code\n\n"
        "`ring` compiles C and assembly derived from BoringSSL; their license texts (ISC, and "
        "the OpenSSL and SSLeay notices they carry) are listed under `ring` above.\n"
    )


def generate() -> str:
    tools = subprocess.run([str(HERE / "build-tools.sh"), "about"], check=True, capture_output=True, text=True)
    about = pathlib.Path(tools.stdout.strip().splitlines()[-1]) / "cargo-about"
    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--locked"], cwd=ROOT,
                                     check=True, capture_output=True, text=True).stdout)
    md = subprocess.run(
        [str(about), "generate", "--locked", "--fail", "-c", str(ROOT / "about.toml"),
         "--manifest-path", str(ROOT / "Cargo.toml"), "--workspace",
         *[a for name in ["uniffi-bindgen"] for a in ("--exclude", name)],
         str(HERE / "notices" / "about.hbs")],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return md.rstrip() + "\n" + bundled_c(meta)


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else "check"
    text = generate()
    if cmd == "write":
        OUT.write_text(text)
        print(f"notices: wrote {OUT.name} ({len(text)} bytes)")
        return 0
    if cmd == "check":
        if not OUT.exists() or OUT.read_text() != text:
            print("notices: THIRD-PARTY-NOTICES.md is stale (a dependency changed): run `make notices` and commit it",
                  file=sys.stderr)
            return 1
        print("notices: THIRD-PARTY-NOTICES.md is what cargo-about generates from Cargo.lock")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
