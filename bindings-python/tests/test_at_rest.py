"""Licenses at rest through the Python binding: host protectors built on Python's own crypto,
their errors (with the exception attached), rights edited with sqlite3, the play counter, and
no rollback through a restore; a byte scan of every file written for seeds and content keys."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import license_backup as lb
from _support import FailingProtector, HmacProtector, KeystoreLocked, generated_license, key_id, populate


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_a_host_protector_keeps_every_seed_and_content_key_out_of_every_file(tmp_path: Path) -> None:
    p = HmacProtector(b"\x01" * 32)
    service = lb.EmbeddedService(tmp_path / "service.db", protector=p)
    backup = tmp_path / "backup"
    backup.mkdir()
    with lb.LicenseStore(tmp_path / "a.db", protector=p) as a, lb.LicenseStore(tmp_path / "b.db", protector=p) as b:
        assert a.protector.label == "host (HmacProtector)"
        populate(a, 40, restricted=[3, 9])
        ra = lb.BackupRestorer(a, service)
        ra.backup_path = backup
        assert ra.backup_licenses().wait().licenses == 38
        rb = lb.BackupRestorer(b, service)
        rb.restore_path = backup
        assert rb.restore_licenses(individualize=True).wait().licenses == 38
        assert b.content_key(key_id(1)) == b"content-key-5a-1"
        a.remove_license(key_id(1))
        del ra, rb
    secrets = [f"content-key-5a-{i}".encode() for i in range(1, 41)] + p.seen
    assert len(p.seen) >= 3  # two devices (one individualized) and the service
    for f in files_under(tmp_path):
        data = f.read_bytes()
        for s in secrets:
            assert s not in data, f"a secret in clear in {f.name}"


def test_protector_errors_name_the_problem_and_change_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    mine = HmacProtector(b"\x02" * 32)
    with lb.LicenseStore(path, protector=mine) as s:
        populate(s, 3)
    before = path.read_bytes()
    with pytest.raises(lb.ProtectorRequiredError):
        lb.LicenseStore(path)
    with pytest.raises(lb.ProtectorMismatchError):
        lb.LicenseStore(path, protector=HmacProtector(b"\x03" * 32))
    with pytest.raises(lb.ProtectorFailedError) as info:
        lb.LicenseStore(path, protector=FailingProtector())
    assert isinstance(info.value.__cause__, KeystoreLocked)
    assert "the keystore is locked" in info.value.message

    class NotBytes:
        def wrap(self, seed: bytes) -> bytes:
            return seed

        def unwrap(self, wrapped: bytes) -> str:
            return "nope"

    with pytest.raises(lb.ProtectorFailedError, match="returned str, not bytes"):
        lb.LicenseStore(path, protector=NotBytes())
    with pytest.raises(TypeError):
        lb.LicenseStore(path, protector=object())
    assert path.read_bytes() == before
    with lb.LicenseStore(path, protector=lb.Protector.host(mine)) as s:
        assert s.verify() == 3


def test_a_failing_protector_during_an_individualizing_restore_is_attached(tmp_path: Path) -> None:
    class Flaky(HmacProtector):
        fail = False

        def wrap(self, seed: bytes) -> bytes:
            if self.fail:
                raise KeystoreLocked("locked while restoring")
            return super().wrap(seed)

    p = Flaky(b"\x04" * 32)
    service = lb.EmbeddedService(tmp_path / "service.db")
    (tmp_path / "backup").mkdir()
    with lb.LicenseStore(tmp_path / "a.db", protector=p) as a:
        populate(a, 5)
        r = lb.BackupRestorer(a, service)
        r.backup_path = r.restore_path = tmp_path / "backup"
        r.backup_licenses().wait()
        device = a.device_id()
        p.fail = True
        with pytest.raises(lb.ProtectorFailedError) as info:
            r.restore_licenses(individualize=True).wait()
        assert isinstance(info.value.__cause__, KeystoreLocked)
        assert a.device_id() == device and a.verify() == 5


def test_an_unprotected_store_is_protected_in_place(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with lb.LicenseStore(path, protector=lb.Protector.unprotected()) as s:
        populate(s, 4)
        device = s.device_id()
    seed = sqlite3.connect(path).execute("SELECT seed FROM secret").fetchone()[0]
    assert len(seed) == 32 and seed in path.read_bytes()
    with lb.LicenseStore(path, protector=HmacProtector(b"\x05" * 32)) as s:
        assert s.device_id() == device and s.verify() == 4
    assert all(seed not in f.read_bytes() for f in files_under(tmp_path))


def test_edited_rights_are_refused_naming_the_license(world: object, tmp_path: Path) -> None:
    r = world.device("A")  # type: ignore[attr-defined]
    store = r.store
    populate(store, 6, restricted=[2])
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE licenses SET backup_allowed = 1 WHERE backup_allowed = 0")
    for call in (store.verify, store.list_licenses, lambda: store.get_license(key_id(2))):
        with pytest.raises(lb.LicenseTamperedError, match=key_id(2)):
            call()
    with pytest.raises(lb.LicenseTamperedError, match=key_id(2)):
        r.backup_licenses().wait()
    assert not (Path(r.backup_path) / lb.ARCHIVE_FILE_NAME).exists()


def test_plays_are_counted_and_an_old_archive_gives_none_back(world: object) -> None:
    r = world.device("A")  # type: ignore[attr-defined]
    store = r.store
    store.add_license(generated_license(1))
    store.update_rights(key_id(1), lb.Rights(plays_remaining=2, expires_at=4_000_000_000))
    r.backup_licenses().wait()
    assert store.use_play(key_id(1)).plays_remaining == 1
    assert store.use_play(key_id(1)).plays_remaining == 0
    with pytest.raises(lb.PlaysExhaustedError):
        store.use_play(key_id(1))
    summary = r.restore_licenses(replace_existing=True).wait()
    assert summary.licenses == 1
    assert store.get_license(key_id(1)).rights.plays_remaining == 0
    store.remove_license(key_id(1))
    r.restore_licenses().wait()
    assert store.get_license(key_id(1)).rights.plays_remaining == 0
