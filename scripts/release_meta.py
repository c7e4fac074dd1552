#!/usr/bin/env python3
"""One version and one set of metadata for every crate and package, taken from the workspace.

    release_meta.py check          fail when a crate, pyproject.toml, package.json or
                                   CHANGELOG.md disagrees with [workspace.package]
    release_meta.py write          rewrite package.json's version and metadata, and
                                   Package.swift's releaseVersion, from it
    release_meta.py version        print the version

Every workspace member (found with `cargo metadata`, so new crates are covered) must inherit
version, license and repository; pyproject.toml takes its version from its crate (maturin,
`dynamic = ["version"]`); package.json is written by `write` (run by `make generate`); the
npm platform packages are made from it by scripts/npm_packages.py.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE_JSON = ROOT / "bindings-node" / "package.json"
PYPROJECT = ROOT / "bindings-python" / "pyproject.toml"
CHANGELOG = ROOT / "CHANGELOG.md"
PACKAGE_SWIFT = ROOT / "bindings-swift" / "Package.swift"
SWIFT_VERSION = re.compile(r'^let releaseVersion = "([^"]*)"$', re.M)


def workspace() -> dict:
    """[workspace.package] of the root Cargo.toml."""
    with open(ROOT / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["workspace"]["package"]


def version() -> str:
    return workspace()["version"]


def npm_metadata(ws: dict) -> dict:
    """The package.json fields that come from the workspace."""
    return {
        "version": ws["version"],
        "license": ws["license"],
        "author": ", ".join(ws["authors"]),
        "homepage": ws["homepage"],
        "repository": {"type": "git", "url": "git+" + ws["repository"] + ".git", "directory": "bindings-node"},
        "bugs": {"url": ws["repository"] + "/issues"},
        "keywords": ws["keywords"] + ["electron", "napi"],
    }


def updated_package_json(text: str, ws: dict) -> str:
    """package.json with the workspace's fields, in place of the old ones (key order kept)."""
    pkg = json.loads(text)
    meta = npm_metadata(ws)
    out: dict = {}
    for key, value in pkg.items():
        out[key] = meta.pop(key, value)
        if key == "license":  # new keys go after license, in a fixed order
            for k in list(meta):
                if k not in pkg:
                    out[k] = meta.pop(k)
    out.update(meta)
    return json.dumps(out, indent=2, ensure_ascii=False) + "\n"


def check() -> list[str]:
    ws = workspace()
    errors: list[str] = []
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps", "--manifest-path", str(ROOT / "Cargo.toml")],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    for pkg in meta["packages"]:
        rel = pathlib.Path(pkg["manifest_path"]).relative_to(ROOT)
        for field in ("version", "license", "repository"):
            if pkg.get(field) != ws[field]:
                errors.append(f"{rel}: {field} is {pkg.get(field)!r}, the workspace says {ws[field]!r}; "
                              f"inherit it: `{field}.workspace = true`")
    text = PACKAGE_JSON.read_text()
    if updated_package_json(text, ws) != text:
        errors.append("bindings-node/package.json: version or metadata differ from the workspace; "
                      "run `make generate` (scripts/release_meta.py write)")
    with open(PYPROJECT, "rb") as f:
        project = tomllib.load(f)["project"]
    if project.get("dynamic") != ["version"] or "version" in project:
        errors.append("bindings-python/pyproject.toml: the version must be dynamic (from the crate)")
    if project.get("license") != ws["license"]:
        errors.append(f"bindings-python/pyproject.toml: license {project.get('license')!r} != {ws['license']!r}")
    for key in ("Homepage", "Repository"):
        want = ws[key.lower()]
        if project.get("urls", {}).get(key) != want:
            errors.append(f"bindings-python/pyproject.toml: urls.{key} is not {want!r}")
    for name in ("LICENSE-MIT", "LICENSE-APACHE", "THIRD-PARTY-NOTICES.md"):
        if not (ROOT / name).is_file():
            errors.append(f"{name} is missing at the repository root")
        link = ROOT / "bindings-python" / name
        if not (link.is_symlink() and link.resolve() == (ROOT / name).resolve()):
            errors.append(f"bindings-python/{name} must be a symlink to ../{name} (the wheel and sdist ship it)")
    m = SWIFT_VERSION.search(PACKAGE_SWIFT.read_text())
    if not m or m.group(1) != ws["version"]:
        errors.append("bindings-swift/Package.swift: releaseVersion differs from the workspace's version; "
                      "run `make generate`")
    if f"## [{ws['version']}]" not in CHANGELOG.read_text():
        errors.append(f"CHANGELOG.md has no `## [{ws['version']}]` section")
    with open(ROOT / "Cargo.toml", "rb") as f:
        core_dep = tomllib.load(f)["workspace"]["dependencies"]["license-backup"]
    if core_dep.get("version") != ws["version"]:
        errors.append("Cargo.toml: [workspace.dependencies] license-backup's version differs from the workspace's "
                      "(a published crate such as the CLI depends on the core by version)")
    return errors


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else "check"
    if cmd == "version":
        print(version())
    elif cmd == "write":
        text = PACKAGE_JSON.read_text()
        new = updated_package_json(text, workspace())
        if new != text:
            PACKAGE_JSON.write_text(new)
            print("release_meta: wrote bindings-node/package.json")
        swift = PACKAGE_SWIFT.read_text()
        new = SWIFT_VERSION.sub(f'let releaseVersion = "{version()}"', swift)
        if new != swift:
            PACKAGE_SWIFT.write_text(new)
            print("release_meta: wrote bindings-swift/Package.swift")
    elif cmd == "check":
        errors = check()
        for e in errors:
            print(f"release_meta: {e}", file=sys.stderr)
        if errors:
            return 1
        print(f"release_meta: every crate and package says version {version()} and the workspace's metadata")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
