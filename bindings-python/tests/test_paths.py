"""Paths as Python has them: str, bytes and os.PathLike, and folders whose names are not UTF-8
(a USB stick formatted elsewhere), given as bytes or as the surrogate-escaped str os.fsdecode
makes of them. Every place a path is taken: BackupPath, RestorePath, the store, the ledger,
RemoteService's ca_file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import license_backup as lb
from _support import key_id, populate

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Windows names are UTF-16: no bytes names")

# A name in Latin-1 ("café" and "ÿ"), which is not UTF-8.
LATIN1 = b"caf\xe9-\xff"
# Debian's bundle of the system's CA certificates (ca-certificates).
SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"


class BytesPathLike:
    """An os.PathLike that gives bytes."""

    def __init__(self, path: bytes) -> None:
        self.path = path

    def __fspath__(self) -> bytes:
        return self.path


def files(folder: bytes) -> set[bytes]:
    """The files in a folder, SQLite's -wal and -shm companions left out."""
    return {n for n in os.listdir(folder) if not n.endswith((b"-wal", b"-shm"))}


@pytest.fixture
def latin1(tmp_path: Path) -> Iterator[bytes]:
    """A real folder on disk whose name is not UTF-8, as bytes."""
    folder = os.fsencode(tmp_path) + b"/" + LATIN1
    os.mkdir(folder)
    assert LATIN1 in os.listdir(os.fsencode(tmp_path))
    yield folder


FORMS: dict[str, Callable[[bytes], Any]] = {
    "bytes": lambda p: p,
    "surrogate str": os.fsdecode,
    "Path": lambda p: Path(os.fsdecode(p)),
    "bytes PathLike": BytesPathLike,
}


@pytest.mark.parametrize("form", FORMS)
def test_a_backup_to_and_a_restore_from_a_folder_named_in_latin1(form: str, latin1: bytes, tmp_path: Path) -> None:
    as_given = FORMS[form]
    service = lb.EmbeddedService(as_given(latin1 + b"/ledger-\xe9.db"))
    with lb.LicenseStore(as_given(latin1 + b"/a-\xe9.db")) as a, lb.LicenseStore(as_given(latin1 + b"/b-\xe9.db")) as b:
        populate(a, 3)
        backup = lb.BackupRestorer(a, service)
        backup.backup_path = as_given(latin1)
        # Read back as os.fsdecode makes it: the str that names the same folder.
        assert backup.backup_path == os.fsdecode(latin1)
        assert backup.properties["BackupPath"] == os.fsdecode(latin1)
        assert backup.property_by_index(0) == ("BackupPath", os.fsdecode(latin1))
        assert backup.backup_licenses().wait().licenses == 3
        assert os.path.isfile(latin1 + b"/" + lb.ARCHIVE_FILE_NAME.encode())
        restore = lb.BackupRestorer(b, service)
        restore.set_property("RestorePath", as_given(latin1))
        assert restore.restore_quota().licenses == 3
        assert restore.restore_licenses().wait().licenses == 3
        assert b.content_key(key_id(2)) == a.content_key(key_id(2))
        assert os.fsencode(a.path) == latin1 + b"/a-\xe9.db" and os.fsencode(service.path) == latin1 + b"/ledger-\xe9.db"
    # The files are where the bytes say, under the Latin-1 name.
    assert files(latin1) == {b"a-\xe9.db", b"b-\xe9.db", b"ledger-\xe9.db", b"licenses.lbk"}


def test_errors_about_a_latin1_folder_name_it(latin1: bytes, tmp_path: Path) -> None:
    with lb.LicenseStore(tmp_path / "a.db") as store:
        r = lb.BackupRestorer(store, lb.EmbeddedService(tmp_path / "ledger.db"))
        missing = latin1 + b"/gone-\xe9"
        r.restore_path = missing
        with pytest.raises(FileNotFoundError) as info:
            r.restore_licenses().wait()
        assert isinstance(info.value, lb.PathNotFoundError)
        assert info.value.filename == os.fsdecode(missing) and os.fsencode(info.value.filename) == missing
        r.restore_path = latin1
        with pytest.raises(lb.ArchiveMissingError) as missing_archive:
            r.restore_quota()
        assert os.fsencode(missing_archive.value.filename) == latin1 + b"/" + lb.ARCHIVE_FILE_NAME.encode()
        r.backup_path = latin1
        r.backup_licenses().wait()
        with pytest.raises(FileExistsError) as exists:
            r.backup_licenses().wait()
        assert os.fsencode(exists.value.filename) == latin1 + b"/" + lb.ARCHIVE_FILE_NAME.encode()
        # The END event carries the same error, filename included.
        seen: list[lb.StatusEvent] = []
        with pytest.raises(lb.BackupExistsError):
            r.backup_licenses(on_status=seen.append).wait()
        end = seen[-1]
        assert isinstance(end, lb.End) and isinstance(end.error, FileExistsError)
        assert end.error.filename == exists.value.filename
    with pytest.raises(NotADirectoryError) as info2:
        lb.LicenseStore(latin1)
    assert os.fsencode(info2.value.filename) == latin1


@pytest.mark.parametrize(
    "value",
    [b"", b"/a\0b", "/a\0b", b"/caf\xe9\0", BytesPathLike(b"/caf\xe9\0")],
    ids=["empty bytes", "NUL in bytes", "NUL in str", "NUL in Latin-1 bytes", "NUL in a bytes PathLike"],
)
def test_bad_paths_are_refused_by_name_and_change_nothing(value: object, tmp_path: Path) -> None:
    with lb.LicenseStore(tmp_path / "a.db") as store:
        r = lb.BackupRestorer(store, lb.EmbeddedService(tmp_path / "ledger.db"))
        r.backup_path = tmp_path
        for setter in (lambda: setattr(r, "backup_path", value), lambda: r.set_property("BackupPath", value)):
            with pytest.raises(lb.InvalidArgumentError, match="BackupPath"):
                setter()
        assert r.backup_path == str(tmp_path)
        for make in (lb.LicenseStore, lb.EmbeddedService):
            with pytest.raises(lb.InvalidArgumentError, match="path"):
                make(value)  # type: ignore[arg-type]
        with pytest.raises(lb.InvalidArgumentError, match="ca_file"):
            lb.RemoteService("https://licenses.example", ca_file=value)  # type: ignore[arg-type]
    assert files(os.fsencode(tmp_path)) == {b"a.db", b"ledger.db"}


def test_paths_of_other_types_are_type_errors(tmp_path: Path) -> None:
    with lb.LicenseStore(tmp_path / "a.db") as store:
        r = lb.BackupRestorer(store, lb.EmbeddedService(tmp_path / "ledger.db"))
        for value in (42, 1.5, [b"/a"], bytearray(b"/a")):
            with pytest.raises(TypeError, match="BackupPath") as info:
                r.backup_path = value  # type: ignore[assignment]
            assert isinstance(info.value, lb.LicenseBackupError)
            with pytest.raises(TypeError, match="path") as info2:
                lb.LicenseStore(value)  # type: ignore[arg-type]
            assert info2.value.code == lb.ErrorCode.INVALID_ARGUMENT
        # A path-like object whose __fspath__ gives neither str nor bytes.
        with pytest.raises(lb.InvalidArgumentError, match="path"):
            lb.EmbeddedService(BytesPathLike(42))  # type: ignore[arg-type]
        # A path for a number property is the wrong property type, as any str is.
        with pytest.raises(lb.WrongPropertyTypeError):
            r.set_property("ProgressInterval", Path("/a"))


@pytest.mark.skipif(not os.path.isfile(SYSTEM_CAS), reason="no CA bundle at " + SYSTEM_CAS)
def test_ca_file_takes_any_path_form(latin1: bytes) -> None:
    # RemoteService reads the CA file when it is made: certificates under a Latin-1 name.
    pem, junk = latin1 + b"/ca-\xe9.pem", latin1 + b"/junk-\xe9.pem"
    with open(pem, "wb") as f:
        f.write(Path(SYSTEM_CAS).read_bytes())
    with open(junk, "wb") as f:
        f.write(b"not a certificate\n")
    for form in FORMS.values():
        assert lb.RemoteService("https://licenses.example", ca_file=form(pem)).url == "https://licenses.example"
        # The junk file is read too (it is found, under its name, and refused for what it holds).
        with pytest.raises(lb.InvalidArgumentError, match="no PEM certificate"):
            lb.RemoteService("https://licenses.example", ca_file=form(junk))
