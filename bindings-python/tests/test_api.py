"""Every public call of the package, through the installed wheel."""

from __future__ import annotations

import dataclasses
import pathlib
import sys
import threading
import time
import uuid
from typing import Any, Callable, Dict

import pytest

import license_backup as lb
from _support import Recorder, generated_license, key_id, populate
from conftest import World

# --- LicenseStore ------------------------------------------------------------------------------


def test_store_licenses_and_catalog(tmp_path: pathlib.Path) -> None:
    with lb.LicenseStore(tmp_path / "a.db") as store:
        assert isinstance(store, lb.LicenseStore)
        assert store.path == tmp_path / "a.db"
        assert not store.closed
        device = store.device_id()
        assert len(device) == 32 and int(device, 16) >= 0
        assert store.license_count() == 0 and store.list_licenses() == []

        store.add_license(generated_license(2, restricted=True, counted=True))
        store.add_licenses([generated_license(1), generated_license(3)])
        assert store.license_count() == 3
        assert [lic.key_id for lic in store.list_licenses()] == [key_id(1), key_id(2), key_id(3)]

        lic = store.get_license(key_id(2))
        assert lic == lb.License(
            key_id=key_id(2),
            rights=lb.Rights(backup_allowed=False, plays_remaining=2),
            issuer="https://issuer.example",
            issued_at=1_700_000_002,
            catalog=None,
        )
        assert lic.title is None
        assert store.get_license(key_id(9)) is None
        assert store.content_key(key_id(2)) == b"content-key-5a-2"

        # Key IDs: any case, with or without hyphens, or a uuid.UUID; always shown lowercase.
        assert store.content_key(key_id(2).upper()) == b"content-key-5a-2"
        assert store.content_key(uuid.UUID(key_id(2))) == b"content-key-5a-2"
        assert store.get_license(key_id(2).replace("-", "")) == lic

        entry = lb.CatalogEntry(title="Blue in Green", artist="Miles Davis", file_path="/music/blue.wma")
        store.set_catalog_entry(key_id(1), entry)
        assert store.catalog_entry(key_id(1)) == entry
        assert store.get_license(key_id(1)).catalog == entry  # type: ignore[union-attr]
        assert store.get_license(key_id(1)).title == "Blue in Green"  # type: ignore[union-attr]
        store.set_catalog_entry(key_id(7), lb.CatalogEntry(title="not on this device"))
        assert store.catalog_entry(key_id(7)) == lb.CatalogEntry(title="not on this device")
        assert store.remove_catalog_entry(key_id(7)) is True
        assert store.remove_catalog_entry(key_id(7)) is False
        assert store.catalog_entry(key_id(7)) is None

        # replace=
        with pytest.raises(lb.LicenseExistsError):
            store.add_license(generated_license(1, restricted=True))
        assert store.get_license(key_id(1)).rights.backup_allowed is True  # type: ignore[union-attr]
        store.add_license(generated_license(1, restricted=True), replace=True)
        assert store.get_license(key_id(1)).rights.backup_allowed is False  # type: ignore[union-attr]
        # A batch is all or nothing.
        with pytest.raises(lb.LicenseExistsError):
            store.add_licenses([generated_license(4), generated_license(3)])
        assert store.get_license(key_id(4)) is None
        store.add_licenses([generated_license(4), generated_license(3)], replace=True)
        assert store.license_count() == 4

        assert store.verify() == 4
        assert store.remove_license(key_id(4)) is True
        assert store.remove_license(key_id(4)) is False
        assert store.license_count() == 3
    assert store.closed


def test_store_reopens_with_same_identity(tmp_path: pathlib.Path) -> None:
    with lb.LicenseStore(str(tmp_path / "a.db")) as store:
        populate(store, 2)
        device = store.device_id()
    with lb.LicenseStore(tmp_path / "a.db") as again:
        assert again.device_id() == device
        assert again.content_key(key_id(1)) == b"content-key-5a-1"
        assert again.get_license(key_id(1)).title == "Track 1"  # type: ignore[union-attr]


STORE_CALLS: list[tuple[str, Callable[[lb.LicenseStore], Any]]] = [
    ("device_id", lambda s: s.device_id()),
    ("add_license", lambda s: s.add_license(generated_license(1))),
    ("add_licenses", lambda s: s.add_licenses([generated_license(1)])),
    ("get_license", lambda s: s.get_license(key_id(1))),
    ("list_licenses", lambda s: s.list_licenses()),
    ("remove_license", lambda s: s.remove_license(key_id(1))),
    ("license_count", lambda s: s.license_count()),
    ("content_key", lambda s: s.content_key(key_id(1))),
    ("set_catalog_entry", lambda s: s.set_catalog_entry(key_id(1), lb.CatalogEntry())),
    ("catalog_entry", lambda s: s.catalog_entry(key_id(1))),
    ("remove_catalog_entry", lambda s: s.remove_catalog_entry(key_id(1))),
    ("verify", lambda s: s.verify()),
    ("__enter__", lambda s: s.__enter__()),
]


@pytest.mark.parametrize("call", [c for _, c in STORE_CALLS], ids=[n for n, _ in STORE_CALLS])
def test_use_after_close_raises(tmp_path: pathlib.Path, call: Callable[[lb.LicenseStore], Any]) -> None:
    store = lb.LicenseStore(tmp_path / "a.db")
    store.close()
    store.close()  # closing twice is fine
    with pytest.raises(ValueError, match="closed"):
        call(store)
    assert "closed" in repr(store)
    with pytest.raises(ValueError, match="closed"):
        lb.BackupRestorer(store, lb.EmbeddedService(tmp_path / "s.db"))


def test_restorer_keeps_working_after_its_store_is_closed(world: World) -> None:
    restorer = world.device("A")
    populate(restorer.store, 3)
    restorer.store.close()
    assert restorer.backup_licenses().wait().licenses == 3


def test_bad_arguments(tmp_path: pathlib.Path) -> None:
    with lb.LicenseStore(tmp_path / "a.db") as store:
        for bad in ["", "xyz", key_id(1) + "ff"]:
            with pytest.raises(lb.InvalidArgumentError) as info:
                store.content_key(bad)
            assert isinstance(info.value, ValueError)
        with pytest.raises(TypeError, match="key ID"):
            store.get_license(42)  # type: ignore[arg-type]
        with pytest.raises(lb.InvalidArgumentError, match="content_key"):
            store.add_license(dataclasses.replace(generated_license(1), content_key=b""))
        with pytest.raises(TypeError, match="bytes"):
            store.add_license(dataclasses.replace(generated_license(1), content_key="text"))  # type: ignore[arg-type]
        with pytest.raises(lb.InvalidArgumentError, match="NUL"):
            store.set_catalog_entry(key_id(1), lb.CatalogEntry(title="a\0b"))
    with pytest.raises(lb.NotAFolderError):
        lb.LicenseStore(tmp_path)


# --- EmbeddedService ---------------------------------------------------------------------------


def test_service(tmp_path: pathlib.Path) -> None:
    default = lb.EmbeddedService(tmp_path / "s.db")
    assert default.path == tmp_path / "s.db"
    assert default.max_devices == 4
    assert default.refusal_url.startswith("https://")
    custom = lb.EmbeddedService(str(tmp_path / "t.db"), max_devices=2, refusal_url="https://help.example/limit")
    assert (custom.max_devices, custom.refusal_url) == (2, "https://help.example/limit")
    assert "max_devices=2" in repr(custom)
    with pytest.raises(lb.InvalidArgumentError):
        lb.EmbeddedService(tmp_path / "u.db", max_devices=0)
    with pytest.raises(lb.InvalidArgumentError, match="max_devices"):
        lb.EmbeddedService(tmp_path / "u.db", max_devices=-1)


def test_service_offline(world: World) -> None:
    a, b = world.device("A"), world.device("B")
    populate(a.store, 2)
    a.backup_licenses().wait()
    world.service.set_online(False)
    with pytest.raises(lb.ServiceUnavailableError):
        b.restore_quota()
    with pytest.raises(lb.ServiceUnavailableError):
        b.restore_licenses().wait()
    world.service.set_online(True)
    assert b.restore_quota().restores_remaining == 3
    assert b.restore_licenses().wait().licenses == 2


# --- properties ----------------------------------------------------------------------------------


def test_property_methods(world: World) -> None:
    r = world.device("A")
    r.remove_all_properties()
    assert r.property_count() == 0
    r.set_property("RestorePath", "/r")
    r.set_property("BackupPath", pathlib.Path("/b"))
    r.set_property("ProgressInterval", 5)
    r.set_property("RestorePath", "/r2")
    assert r.property_count() == 3
    assert r.property_by_index(0) == ("RestorePath", "/r2")
    assert r.property_by_index(1) == ("BackupPath", "/b")
    assert r.property_by_index(2) == ("ProgressInterval", 5)
    with pytest.raises(lb.InvalidArgumentError):
        r.property_by_index(3)
    assert r.get_property("BackupPath") == "/b"
    assert r.get_property("ProgressInterval") == 5
    assert r.remove_property("BackupPath") is True
    assert r.remove_property("BackupPath") is False
    assert r.get_property("BackupPath") is None
    with pytest.raises(lb.UnknownPropertyError):
        r.get_property("backuppath")
    with pytest.raises(lb.UnknownPropertyError):
        r.set_property("Nope", True)
    with pytest.raises(lb.UnknownPropertyError):
        r.remove_property("Nope")
    with pytest.raises(lb.WrongPropertyTypeError) as wrong:
        r.set_property("BackupPath", 3)
    assert isinstance(wrong.value, TypeError)
    with pytest.raises(lb.WrongPropertyTypeError):
        r.set_property("ProgressInterval", True)  # a bool is not a count
    with pytest.raises(lb.InvalidArgumentError, match="2.5"):
        r.set_property("ProgressInterval", 2.5)  # type: ignore[arg-type]  # not an integer
    with pytest.raises(lb.WrongPropertyTypeError):
        r.set_property("BackupPath", 2.5)  # type: ignore[arg-type]
    with pytest.raises(lb.UnknownPropertyError):
        r.set_property("Nope", 2.5)  # type: ignore[arg-type]
    with pytest.raises(lb.InvalidArgumentError):
        r.set_property("ProgressInterval", 0)
    with pytest.raises(lb.InvalidArgumentError):
        r.set_property("ProgressInterval", 2**32)
    with pytest.raises(lb.InvalidArgumentError):
        r.set_property("ProgressInterval", -1)
    with pytest.raises(lb.InvalidArgumentError):
        r.set_property("BackupPath", "")
    r.remove_all_properties()
    assert r.property_count() == 0


def test_property_mapping_and_attributes(world: World) -> None:
    r = world.device("A")
    props = r.properties
    assert dict(props) == {"BackupPath": str(world.backup), "RestorePath": str(world.backup)}
    assert len(props) == 2 and list(props) == ["BackupPath", "RestorePath"]
    assert "BackupPath" in props and "ProgressInterval" not in props and "Nope" not in props
    props["ProgressInterval"] = 10
    assert r.progress_interval == 10 and props["ProgressInterval"] == 10
    with pytest.raises(KeyError):
        props["Nope"]
    with pytest.raises(lb.UnknownPropertyError):
        props["Nope"] = 1
    del props["ProgressInterval"]
    with pytest.raises(KeyError):
        props["ProgressInterval"]
    with pytest.raises(KeyError):
        del props["ProgressInterval"]
    assert props.get("ProgressInterval") is None
    assert r.progress_interval is None

    r.backup_path = pathlib.Path("/mnt/usb")
    assert r.backup_path == "/mnt/usb" and props["BackupPath"] == "/mnt/usb"
    r.restore_path = "/mnt/other"
    assert r.restore_path == r.get_property("RestorePath") == "/mnt/other"
    r.backup_path = None
    assert r.backup_path is None and "BackupPath" not in props
    r.progress_interval = 3
    assert r.get_property("ProgressInterval") == 3
    assert "RestorePath" in repr(props)
    props.clear()
    assert len(props) == 0 and r.restore_path is None


# --- operations ------------------------------------------------------------------------------------


def test_backup_and_restore(world: World) -> None:
    a, b = world.device("A"), world.device("B")
    populate(a.store, 5, restricted=[2], counted=[3], untitled=[4])
    a.progress_interval = 2
    rec = Recorder()
    op = a.backup_licenses(on_status=rec)
    assert isinstance(op, lb.Operation) and op.operation == "backup"
    summary = op.wait()
    assert op.done and "done" in repr(op)
    assert (summary.licenses, summary.restricted, summary.skipped) == (4, 1, 0)
    assert summary.bytes > 0 and summary.duration_ms >= 0
    assert rec.events == [
        lb.Begin("backup"),
        lb.RestrictedLicense(key_id(2), "Track 2"),
        lb.Progress("backup", 2, 5),
        lb.Progress("backup", 4, 5),
        lb.Progress("backup", 5, 5),
        lb.End("backup", summary, None),
    ]
    assert all(t != threading.get_ident() for t in rec.threads), "callbacks run on the delivery thread"
    assert (world.backup / lb.ARCHIVE_FILE_NAME).exists()
    assert op.wait() == summary  # waiting again returns the same result

    quota = b.restore_quota()
    assert quota == lb.Quota(
        licenses=4, max_devices=4, restores_remaining=3, device_already_counted=False, allowed=True
    )
    assert quota.can_restore
    rec = Recorder()
    restored = b.restore_licenses(on_status=rec).wait()
    assert restored.licenses == 4
    assert rec.kinds() == ["Connecting", "Disconnecting", "Begin", "Progress", "End"]
    assert b.store.content_key(key_id(3)) == a.store.content_key(key_id(3))
    assert b.store.get_license(key_id(3)).rights.plays_remaining == 3  # type: ignore[union-attr]
    assert b.store.get_license(key_id(2)) is None
    assert b.restore_quota().device_already_counted

    # replace_existing / individualize
    again = b.restore_licenses().wait()
    assert (again.licenses, again.skipped) == (0, 4)
    again = b.restore_licenses(replace_existing=True).wait()
    assert (again.licenses, again.skipped) == (4, 0)
    before = b.store.device_id()
    b.restore_licenses(individualize=True).wait()
    assert b.store.device_id() != before
    assert b.store.verify() == 4


def test_overwrite_flag(world: World) -> None:
    a = world.device("A")
    populate(a.store, 2)
    a.backup_licenses().wait()
    archive = (world.backup / lb.ARCHIVE_FILE_NAME).read_bytes()
    with pytest.raises(lb.BackupExistsError):
        a.backup_licenses().wait()
    assert (world.backup / lb.ARCHIVE_FILE_NAME).read_bytes() == archive
    assert a.backup_licenses(overwrite=True).wait().licenses == 2
    assert a.backup_licenses(True).wait().licenses == 2


def test_path_not_set_fails_at_the_call(world: World) -> None:
    r = world.device("A")
    r.remove_all_properties()
    with pytest.raises(lb.PathNotSetError):
        r.backup_licenses(on_status=lambda e: pytest.fail("no events"))
    with pytest.raises(lb.PathNotSetError):
        r.restore_licenses()
    with pytest.raises(lb.PathNotSetError):
        r.restore_quota()


def test_on_status_must_be_callable(world: World) -> None:
    with pytest.raises(TypeError, match="callable"):
        world.device("A").backup_licenses(on_status=42)  # type: ignore[arg-type]


def _slow_backup(world: World, n: int = 20) -> tuple[lb.BackupRestorer, threading.Event]:
    """A device whose backup blocks in its first callback until the returned event is set."""
    r = world.device("A")
    populate(r.store, n)
    r.progress_interval = 1
    return r, threading.Event()


def test_cancel_methods_and_operation_cancel(world: World) -> None:
    r, release = _slow_backup(world)
    rec = Recorder()

    def blocking(event: lb.StatusEvent) -> None:
        rec(event)
        if isinstance(event, lb.Begin):
            release.wait(10)

    op = r.backup_licenses(on_status=blocking)
    assert not op.done and "running" in repr(op)
    with pytest.raises(TimeoutError):
        op.wait(timeout=0.05)
    with pytest.raises(lb.BusyError):
        r.backup_licenses()
    r.cancel_license_backup()
    release.set()
    with pytest.raises(lb.OperationCancelledError) as info:
        op.wait()
    assert rec.events[0] == lb.Begin("backup") and isinstance(rec.end, lb.End)
    assert rec.end.error is not None and rec.end.error.name == "CANCELLED" and not rec.end.ok
    assert info.value.code == lb.ErrorCode.CANCELLED
    assert not (world.backup / lb.ARCHIVE_FILE_NAME).exists()

    # Operation.cancel() and cancel_license_restore()
    r.backup_licenses().wait()
    b = world.device("B")
    release.clear()
    op = b.restore_licenses(on_status=lambda e: release.wait(10) if isinstance(e, lb.Begin) else None)
    b.cancel_license_backup()  # no backup running: nothing happens
    op.cancel()
    release.set()
    with pytest.raises(lb.OperationCancelledError):
        op.wait()
    release.clear()
    op = b.restore_licenses(on_status=lambda e: release.wait(10) if isinstance(e, lb.Begin) else None)
    b.cancel_license_restore()
    release.set()
    with pytest.raises(lb.OperationCancelledError):
        op.wait()
    assert b.store.license_count() == 0
    b.cancel_license_restore()  # nothing running: nothing happens


def test_wait_timeout_argument(world: World) -> None:
    r = world.device("A")
    op = r.backup_licenses()
    with pytest.raises(ValueError):
        op.wait(timeout=-1)
    with pytest.raises(ValueError):
        op.wait(timeout=float("nan"))
    assert op.wait(timeout=30).licenses == 0


def test_add_done_callback(world: World) -> None:
    r, release = _slow_backup(world, 3)
    done = threading.Event()
    seen: list[lb.Operation] = []
    op = r.backup_licenses(on_status=lambda e: release.wait(10) if isinstance(e, lb.Begin) else None)
    op.add_done_callback(lambda o: (seen.append(o), done.set()))
    assert not done.is_set()
    release.set()
    assert done.wait(10) and seen == [op] and op.done
    # Already finished: called at once.
    op.add_done_callback(seen.append)
    assert seen == [op, op]


def test_events_are_immutable_and_match(world: World) -> None:
    event = lb.Progress("backup", 1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.done = 3  # type: ignore[misc]
    if sys.version_info >= (3, 10):  # dataclasses add __match_args__ from 3.10 on
        assert lb.Progress.__match_args__ == ("operation", "done", "total")
        assert lb.End.__match_args__ == ("operation", "summary", "error")
        assert lb.Refused.__match_args__ == ("code", "message", "url")
    assert lb.Connecting() == lb.Connecting() and hash(lb.Begin("restore")) == hash(lb.Begin("restore"))
    if sys.version_info >= (3, 10):  # the match statement (a SyntaxError on 3.9: compiled here)
        code = compile(
            "match event:\n"
            "    case lb.Progress(op, done, total) if done < total:\n"
            "        matched = (op, done, total)\n"
            "    case _:\n"
            "        matched = None\n",
            "<match>",
            "exec",
        )
        scope: Dict[str, Any] = {"event": event, "lb": lb}
        exec(code, scope)
        assert scope["matched"] == ("backup", 1, 2)


def _delivered(r: lb.BackupRestorer, start: Callable[..., lb.Operation]) -> list[tuple[lb.StatusEvent, int]]:
    """Every event of one operation with the time.monotonic_ns() at its delivery."""
    got: list[tuple[lb.StatusEvent, int]] = []
    start(on_status=lambda event: got.append((event, time.monotonic_ns()))).wait(30)
    return got


def test_events_carry_their_emission_time(world: World) -> None:
    """emitted_ns: the engine's emission time on the clock of time.monotonic_ns(), never after
    the delivery, non-decreasing over an operation (events are delivered in emission order)."""
    a, b = world.device("A"), world.device("B")
    populate(a.store, 300, restricted=[5, 150, 299])
    a.progress_interval = 1
    b.progress_interval = 7
    before = time.monotonic_ns()
    backup = _delivered(a, a.backup_licenses)
    restore = _delivered(b, b.restore_licenses)
    assert len(backup) == 1 + 300 + 3 + 1
    assert [type(e).__name__ for e, _ in restore][:3] == ["Connecting", "Disconnecting", "Begin"]
    for got in (backup, restore):
        stamps = [event.emitted_ns for event, _ in got]
        assert all(isinstance(t, int) for t in stamps)
        assert before <= stamps[0], "emitted_ns is on the clock of time.monotonic_ns()"
        assert stamps == sorted(stamps), "emitted_ns is non-decreasing over one operation"
        late = [(event, delivered) for event, delivered in got if event.emitted_ns > delivered]
        assert not late, f"events delivered before they were emitted: {late[:3]}"
        before = got[-1][1]
    # Not a field: construction, equality and repr are those of the fields alone.
    event = backup[1][0]
    assert event.emitted_ns > 0 and lb.Progress("backup", 1, 300).emitted_ns == 0
    assert event == lb.Progress("backup", 1, 300) and repr(event) == repr(lb.Progress("backup", 1, 300))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.emitted_ns = 1  # type: ignore[misc]


def test_delivered_events_are_the_facade_classes(world: World) -> None:
    """The native module builds events without calling their classes: each one is what the
    class makes from its fields, plus emitted_ns (every kind of event, END failed too)."""
    service = lb.EmbeddedService(world.root / "strict.db", max_devices=1)
    a, b = world.device("A", service), world.device("B", service)
    populate(a.store, 4, restricted=[2])
    got = [e for e, _ in _delivered(a, a.backup_licenses)]
    refused: list[lb.StatusEvent] = []
    with pytest.raises(lb.RestoreLimitExceededError):
        b.restore_licenses(on_status=refused.append).wait(30)
    got += refused
    kinds = {type(e) for e in got}
    # Seven kinds here (test_scenarios reaches every kind the interface has).
    assert kinds <= set(lb.StatusEvent.__args__) and len(kinds) >= 7, kinds  # type: ignore[attr-defined]
    assert isinstance(got[-1], lb.End) and isinstance(got[-1].error, lb.RestoreLimitExceededError)
    for event in got:
        fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
        remade = type(event)(**fields)
        assert vars(event) == {**vars(remade), "emitted_ns": event.emitted_ns}
        assert list(vars(event)) == [*fields, "emitted_ns"] and event.emitted_ns > 0
        assert event == remade and hash(event) == hash(remade) and repr(event) == repr(remade)
