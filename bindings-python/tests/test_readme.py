"""The package README's examples (and the package docstring's) compile and run on the Python
running the suite: make test-python runs it on the host's Python, make dist-check on Debian 11's
3.9, the oldest the wheel declares."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import license_backup as lb
from _support import REPO

README = REPO / "bindings-python" / "README.md"


def readme_examples() -> List[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "no python example in the README"
    return blocks


def docstring_examples() -> List[str]:
    """The indented blocks after ``Example::`` or ``::`` in the package docstring."""
    doc = lb.__doc__ or ""
    blocks = re.findall(r"::\n\n((?:    .*\n|\n)+)", doc)
    assert blocks, "no example in the package docstring"
    return [textwrap.dedent(b) for b in blocks]


def test_every_example_compiles_on_this_python() -> None:
    for i, code in enumerate(readme_examples()):
        compile(code, f"README.md example {i + 1}", "exec")
    for i, code in enumerate(docstring_examples()):
        compile(code, f"license_backup docstring example {i + 1}", "exec")


def test_the_readme_example_runs(tmp_path: Path) -> None:
    code = next(b for b in readme_examples() if "BackupRestorer(" in b)
    usb = tmp_path / "usb"
    usb.mkdir()
    runnable = code.replace('"/media/usb"', repr(str(usb)))
    assert runnable != code, "the example's folder changed: update this test"
    script = tmp_path / "example.py"
    script.write_text(runnable)
    first = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "backup: Summary(" in first.stdout and "restore: Summary(" in first.stdout, first.stdout
    assert "Quota(" in first.stdout and (usb / lb.ARCHIVE_FILE_NAME).is_file()
    # Again: the archive exists now, so the example's BackupExistsError branch overwrites it.
    again = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert again.returncode == 0 and again.stdout.count("backup: Summary(") == 1, again.stdout + again.stderr
    assert "BACKUP_EXISTS" in again.stdout  # the END of the refused first attempt, shown by on_status
