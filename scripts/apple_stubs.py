#!/usr/bin/env python3
"""Link stubs (.tbd) of the Apple system frameworks the macOS libraries link, for zig.

zig links macOS binaries without Apple's SDK: it carries libSystem's stubs, not the frameworks'.
The keystore (keyring's `apple-native`: security-framework, core-foundation) links Security and
CoreFoundation, so linking the wheel's and the addon's dylib fails with `unable to find system
framework`. A text stub (TAPI `.tbd`, the format of Apple's own SDK stubs) tells the linker
which symbols a framework exports and its install name; the dylib then records the framework
as a dependency and binds the symbols at load time on the user's Mac, as with Apple's SDK.

The stubs are generated from the declarations of the `-sys` crates that link the frameworks
(the crates are the headers the Rust code is compiled against): every `extern` block of
FRAMEWORK_CRATES lists its functions and statics (honouring `link_name`) under the crate's
framework. No symbol list is written by hand. A crate of the target's dependency graph that
links another framework is reported: add it to FRAMEWORK_CRATES (the link would fail anyway,
naming the framework).

    apple_stubs.py TRIPLE DEST    write DEST/<Name>.framework/<Name>.tbd, print DEST
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The crates whose extern blocks all declare one framework's symbols.
FRAMEWORK_CRATES = {"security-framework-sys": "Security", "core-foundation-sys": "CoreFoundation"}
TBD_TARGETS = {"aarch64-apple-darwin": "arm64-macos", "x86_64-apple-darwin": "x86_64-macos"}

FRAMEWORK = re.compile(r'link\(\s*name\s*=\s*"(\w+)"\s*,\s*kind\s*=\s*"framework"\s*\)')
EXTERN = re.compile(r'(?:unsafe\s+)?extern\s+"C(?:-unwind)?"\s*\{')
COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
ITEM = re.compile(r'(?:link_name\s*=\s*"([^"]+)"[^\n]*\n(?:\s*#\[[^\n]*\n)*)?\s*(?:pub(?:\([^)]*\))?\s+)?'
                  r'(?:unsafe\s+)?(?:safe\s+)?(?:fn|static(?:\s+mut)?)\s+(\w+)')


def _block(text: str, start: int) -> str:
    """The body of the brace block opening just before `start`."""
    depth, i = 1, start
    while depth and i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[start:i - 1]


def framework_symbols(triple: str) -> dict[str, set[str]]:
    """Framework name -> the symbols the target's dependency graph declares from it."""
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", triple],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    resolved = {node["id"] for node in meta["resolve"]["nodes"]}
    out: dict[str, set[str]] = {}
    for pkg in meta["packages"]:
        if pkg["id"] not in resolved or pkg["source"] is None:
            continue
        src = pathlib.Path(pkg["manifest_path"]).parent / "src"
        fw = FRAMEWORK_CRATES.get(pkg["name"])
        if fw is None:
            linked = {f for p in src.rglob("*.rs") for f in FRAMEWORK.findall(p.read_text(errors="replace"))}
            if linked:
                print(f"apple_stubs: {pkg['name']} links {sorted(linked)}: no stub (not in FRAMEWORK_CRATES)",
                      file=sys.stderr)
            continue
        syms = out.setdefault(fw, set())
        for path in src.rglob("*.rs"):
            text = COMMENT.sub("", path.read_text(errors="replace"))
            for m in EXTERN.finditer(text):
                for link_name, name in ITEM.findall(_block(text, m.end())):
                    syms.add("_" + name)
                    if link_name:
                        syms.add("_" + link_name)
    return out


def write_stubs(triple: str, dest: pathlib.Path) -> pathlib.Path:
    """Write a `.tbd` per framework under `dest` (rewritten only when its text changes)."""
    target = TBD_TARGETS[triple]
    for fw, syms in sorted(framework_symbols(triple).items()):
        listed = ", ".join(f"'{s}'" for s in sorted(syms))
        text = ("--- !tapi-tbd\n"
                "tbd-version:     4\n"
                f"targets:         [ {target} ]\n"
                f"install-name:    '/System/Library/Frameworks/{fw}.framework/Versions/A/{fw}'\n"
                "exports:\n"
                f"  - targets:         [ {target} ]\n"
                f"    symbols:         [ {listed} ]\n"
                "...\n")
        path = dest / f"{fw}.framework" / f"{fw}.tbd"
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return dest


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in TBD_TARGETS:
        sys.exit(__doc__)
    print(write_stubs(sys.argv[1], pathlib.Path(sys.argv[2])))
