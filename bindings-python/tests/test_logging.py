"""The engine's diagnostics in the standard ``logging`` module: records under the logger
``license_backup`` with the engine's fields, filtered by the logger's level, nothing printed by
default, no key material in any record."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator, List

import pytest

import license_backup as lb
from _support import populate
from conftest import World


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def ended(self, operation: str) -> List[logging.LogRecord]:
        return [r for r in self.records if r.getMessage() == "operation ended" and r.fields["operation"] == operation]


@pytest.fixture
def capture() -> Iterator[Capture]:
    logger = logging.getLogger("license_backup")
    handler = Capture()
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.setLevel(old)
    logger.removeHandler(handler)


def test_operations_are_logged_with_their_outcome_and_no_key_material(world: World, capture: Capture) -> None:
    a = world.device("A")
    populate(world.stores[-1], 6, restricted=[3])
    assert a.backup_licenses().wait().licenses == 5
    # Delivered on the engine's thread before wait() returns.
    (end,) = capture.ended("backup")
    assert end.levelno == logging.INFO and end.name.startswith("license_backup.")
    assert end.fields["outcome"] == "OK" and end.fields["licenses"] == "5" and end.fields["restricted"] == "1"
    assert end.target.startswith("license_backup::")
    assert any(r.getMessage() == "operation started" and r.fields["operation"] == "backup" for r in capture.records)

    b = world.device("B")
    assert b.restore_licenses().wait().licenses == 5
    assert capture.ended("restore")[0].fields["outcome"] == "OK"
    assert any(r.levelno == logging.DEBUG and r.getMessage() == "connecting to the service" for r in capture.records)

    with pytest.raises(lb.BackupExistsError):
        a.backup_licenses().wait()
    failed = capture.ended("backup")[-1]
    assert failed.levelno == logging.WARNING and failed.fields["outcome"] == "BACKUP_EXISTS"

    text = "\n".join(f"{r.name} {r.getMessage()} {r.fields}" for r in capture.records)
    for i in range(1, 7):
        key = f"content-key-5a-{i}".encode()
        assert key.decode() not in text and key.hex() not in text, f"content key {i} logged"


def test_the_logger_level_filters_and_child_loggers_work(world: World, capture: Capture) -> None:
    logging.getLogger("license_backup").setLevel(logging.WARNING)
    a = world.device("A")
    populate(world.stores[-1], 2)
    a.backup_licenses().wait()
    assert capture.records == []
    with pytest.raises(lb.BackupExistsError):
        a.backup_licenses().wait()
    assert [r.levelname for r in capture.records] == ["WARNING"]
    # A child logger of its own level filters its records only: a restore's connection records
    # (license_backup.restore) still come, the operation's (license_backup.operation) do not.
    logging.getLogger("license_backup").setLevel(logging.DEBUG)
    logging.getLogger("license_backup.operation").setLevel(logging.ERROR)
    try:
        capture.records.clear()
        world.device("B").restore_licenses().wait()
        assert any(r.name == "license_backup.restore" for r in capture.records), capture.records
        assert all(not r.name.startswith("license_backup.operation") for r in capture.records)
    finally:
        logging.getLogger("license_backup.operation").setLevel(logging.NOTSET)


def test_a_broken_handler_does_not_break_the_operation(world: World, capture: Capture) -> None:
    class Broken(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise RuntimeError("handler is broken")

        def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
            raise RuntimeError("handler is broken")

    broken = Broken()
    logging.getLogger("license_backup").addHandler(broken)
    unraisable: list = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        a = world.device("A")
        populate(world.stores[-1], 3)
        assert a.backup_licenses().wait().licenses == 3
    finally:
        sys.unraisablehook = old_hook
        logging.getLogger("license_backup").removeHandler(broken)
    assert unraisable and isinstance(unraisable[0].exc_value, RuntimeError)


def test_nothing_is_printed_by_default(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import license_backup as lb
        from pathlib import Path
        root = Path({str(tmp_path)!r})
        (root / "backup").mkdir()
        store = lb.LicenseStore(root / "device.db")
        store.add_license(lb.NewLicense(key_id="5a000000-0000-0000-0000-000000000001", content_key=b"k",
                                        rights=lb.Rights(), issuer="https://issuer.example", issued_at=1))
        r = lb.BackupRestorer(store, lb.EmbeddedService(root / "service.db"))
        r.backup_path = root / "backup"
        r.backup_licenses().wait()
        try:
            r.backup_licenses().wait()   # BACKUP_EXISTS: a WARNING record, printed by nobody
        except lb.BackupExistsError:
            pass
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")
