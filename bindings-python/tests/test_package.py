"""The installed package: abi3 wheel, typing files, installed files the source's, stubs true,
mypy --strict clean, and the example runs. (The generated files are checked fresh by the Rust
suite: devtools/tests/generated_fresh.rs.)"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import license_backup as lb
from _support import EXAMPLES, PACKAGE_SOURCE, REPO

INSTALLED = Path(lb.__file__).parent


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_abi3_native_module_and_typing_files() -> None:
    native = Path(lb._native.__file__)
    assert native.parent == INSTALLED
    assert native.name == "_native.abi3.so", native.name  # one wheel for CPython 3.9+
    assert (INSTALLED / "py.typed").is_file()
    assert (INSTALLED / "_native.pyi").is_file()
    dist = importlib.metadata.distribution("license-backup")
    assert dist.version == lb.__version__
    tags = [line for line in (dist.read_text("WHEEL") or "").splitlines() if line.startswith("Tag:")]
    assert tags and all("-abi3-" in t and "cp39" in t for t in tags), tags


def test_installed_files_match_the_source_tree() -> None:
    for name in ["__init__.py", "_errors.py", "_extras.py", "_types.py", "_restorer.py", "_native.pyi"]:
        assert (INSTALLED / name).read_text() == (PACKAGE_SOURCE / name).read_text(), (
            f"the installed {name} differs from the source: rebuild the wheel (make test-python)"
        )


def test_stub_matches_the_native_module() -> None:
    """The hand-written _native.pyi against the built module (members, signatures, defaults)."""
    result = _run("-m", "mypy.stubtest", "license_backup._native", "--mypy-config-file", "/dev/null")
    assert result.returncode == 0, (
        f"{result.stdout}{result.stderr}\n_native.pyi is stale: edit "
        "bindings-python/python/license_backup/_native.pyi until "
        "`python -m mypy.stubtest license_backup._native` passes (make test-python runs it)"
    )


def test_mypy_strict_on_the_package_and_the_examples(tmp_path: Path) -> None:
    from test_readme import readme_examples

    readme = tmp_path / "readme"
    readme.mkdir()
    for i, code in enumerate(readme_examples()):
        (readme / f"readme_example_{i + 1}.py").write_text(code)
    common = ["-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache")]
    for target in (["-p", "license_backup"], [str(EXAMPLES)], [str(readme)]):
        result = _run(*common, *target, cwd=tmp_path)
        assert result.returncode == 0, f"mypy --strict {' '.join(target)}:\n{result.stdout}{result.stderr}"


def test_example_backs_up_and_restores(tmp_path: Path) -> None:
    result = _run(str(EXAMPLES / "backup_restore.py"), str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "backup: [##############################] 140/140" in out
    assert "may not be backed up" in out
    assert "restore: connecting to the License Management Service" in out
    assert "Restored 138 licenses on device B" in out
    # Running it again on the same folder works (overwrite, restore again: all skipped).
    again = _run(str(EXAMPLES / "backup_restore.py"), str(tmp_path), cwd=tmp_path)
    assert again.returncode == 0 and "Restored 0 licenses" in again.stdout, again.stdout + again.stderr


def _other_interpreters() -> list[str]:
    """Other CPython 3.9+ interpreters that run here (pyenv installs, or python3.N on PATH)."""
    found: dict[tuple[int, int], str] = {}
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(str(p / "bin" / "python3") for p in pyenv.glob("3.*")) if pyenv.is_dir() else []
    candidates += [w for n in range(9, 20) if (w := shutil.which(f"python3.{n}"))]
    for exe in candidates:
        try:
            out = subprocess.run(
                [exe, "-c", "import sys; print(sys.implementation.name, *sys.version_info[:2])"],
                capture_output=True, text=True, timeout=30,
            ).stdout.split()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if len(out) == 3 and out[0] == "cpython":
            version = (int(out[1]), int(out[2]))
            if version >= (3, 9) and version != sys.version_info[:2]:
                found.setdefault(version, exe)
    return [found[v] for v in sorted(found)]


def test_the_abi3_build_runs_on_other_cpython_versions(tmp_path: Path) -> None:
    interpreters = _other_interpreters()
    if not interpreters:
        import pytest

        pytest.skip("no other CPython 3.9+ interpreter on this machine")
    shutil.copytree(INSTALLED, tmp_path / "license_backup")
    smoke = Path(__file__).with_name("abi3_smoke.py")
    for exe in interpreters:
        result = subprocess.run([exe, str(smoke), str(tmp_path)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and " ok 8 events BACKUP_EXISTS" in result.stdout, (
            exe, result.stdout, result.stderr
        )
