"""Hostile callbacks: blocking, re-entering the store and the restorer, cancelling and waiting
from inside ``on_status`` (docs/reliability.md, section 5). Every wait has a timeout, so a
deadlock fails the test instead of hanging the suite."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, List

import pytest

import license_backup as lb
from _support import Recorder, generated_license, key_id, populate
from conftest import World

# A re-entrant store call must not wait on anything the running operation holds: far below the
# store's 10 s busy timeout, so a lock stall shows up as a failure, not as a slow pass.
REENTRY_LIMIT_SECONDS = 3.0


def test_callback_that_blocks_for_a_while(world: World) -> None:
    """A callback sleeping 150 ms on a few events: the operation still completes, every event
    arrives in order with END last, and another Python thread keeps running meanwhile."""
    r = world.device("A")
    populate(r.store, 8)
    r.progress_interval = 1
    rec = Recorder()
    ticks = 0
    ticks_during_sleeps: List[int] = []
    stop = threading.Event()

    def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.005)

    def on_status(event: lb.StatusEvent) -> None:
        rec(event)
        if isinstance(event, (lb.Begin, lb.End)) or (isinstance(event, lb.Progress) and event.done in (3, 6)):
            before = ticks
            time.sleep(0.15)
            ticks_during_sleeps.append(ticks - before)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        started = time.monotonic()
        summary = r.backup_licenses(on_status=on_status).wait(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        t.join(10)
    assert summary.licenses == 8
    assert elapsed >= 0.6  # the four sleeps were waited for, not skipped
    assert rec.kinds() == ["Begin"] + ["Progress"] * 8 + ["End"]
    assert [e.done for e in rec.events if isinstance(e, lb.Progress)] == list(range(1, 9))
    assert isinstance(rec.end, lb.End) and rec.end.error is None
    # The other thread ran while each callback slept (the sleep releases the GIL).
    assert len(ticks_during_sleeps) == 4 and all(n >= 5 for n in ticks_during_sleeps), ticks_during_sleeps


def _reentrant_calls(r: lb.BackupRestorer, prefix: str) -> Callable[[lb.StatusEvent], None]:
    """An on_status that, on every event, reads and writes the store and the restorer."""
    calls: List[Any] = []
    errors: List[BaseException] = []
    n = 0

    def on_status(event: lb.StatusEvent) -> None:
        nonlocal n
        n += 1
        try:
            started = time.monotonic()
            listed = r.store.list_licenses()
            count = r.store.license_count()
            r.store.add_license(generated_license(n, prefix))
            r.store.set_catalog_entry(key_id(n, prefix), lb.CatalogEntry(title=f"added in {type(event).__name__}"))
            quota = r.restore_quota()
            prop = r.progress_interval
            elapsed = time.monotonic() - started
            calls.append((type(event).__name__, len(listed), count, quota, prop, elapsed))
        except BaseException as e:  # noqa: BLE001 - reported by the test, not by the engine
            errors.append(e)

    on_status.calls = calls  # type: ignore[attr-defined]
    on_status.errors = errors  # type: ignore[attr-defined]
    return on_status


@pytest.mark.parametrize("kind", ["backup", "restore", "restore-individualize"])
def test_store_reentry_from_callback(world: World, kind: str) -> None:
    """list / count / add / set catalog / restore_quota from inside on_status, during a backup
    and during a restore: nothing deadlocks, the results are sane, the operation ends normally."""
    a = world.device("A")
    populate(a.store, 5)
    a.progress_interval = 1
    a.backup_licenses().wait(timeout=30)  # an archive for restore_quota (and for the restore)
    target = a if kind == "backup" else world.device("B")
    before = target.store.license_count()
    on_status = _reentrant_calls(target, "7b")
    if kind == "backup":
        op = target.backup_licenses(overwrite=True, on_status=on_status)
    else:
        op = target.restore_licenses(individualize=kind.endswith("individualize"), on_status=on_status)
    summary = op.wait(timeout=60)
    errors, calls = on_status.errors, on_status.calls  # type: ignore[attr-defined]
    assert errors == [], errors
    assert calls and calls[-1][0] == "End"
    # A backup reads its snapshot after BEGIN returns: the license added at BEGIN is in it,
    # the later ones are not. A restore restores the 5 archived licenses.
    assert summary.licenses == (6 if kind == "backup" else 5)
    for i, (_, listed, count, quota, prop, elapsed) in enumerate(calls):
        assert elapsed < REENTRY_LIMIT_SECONDS, calls
        assert listed == count  # one consistent view per call pair (nothing else writes)
        # The archive in the folder: the old one until the backup's rename, then the new one.
        assert quota.licenses in ((5, 6) if kind == "backup" else (5,)) and quota.max_devices == 4
        assert prop == (1 if kind == "backup" else None)
        if kind == "backup":
            assert count == before + i
    # Every license added from a callback is there, and the store is sound.
    added = {key_id(i, "7b") for i in range(1, len(calls) + 1)}
    present = {lic.key_id for lic in target.store.list_licenses()}
    assert added <= present
    assert target.store.license_count() == before + len(calls) + (0 if kind == "backup" else 5)
    assert target.store.verify() == target.store.license_count()
    assert target.store.catalog_entry(key_id(1, "7b")) is not None


@pytest.mark.parametrize("how", ["Operation.cancel", "cancel_license_backup"])
def test_cancel_from_inside_the_callback(world: World, how: str) -> None:
    r = world.device("A")
    populate(r.store, 10)
    r.progress_interval = 1
    rec = Recorder()
    holder: List[lb.Operation] = []
    ready = threading.Event()

    def on_status(event: lb.StatusEvent) -> None:
        rec(event)
        if isinstance(event, lb.Progress) and event.done == 3:
            assert ready.wait(10)
            holder[0].cancel() if how == "Operation.cancel" else r.cancel_license_backup()

    holder.append(r.backup_licenses(on_status=on_status))
    ready.set()
    with pytest.raises(lb.OperationCancelledError):
        holder[0].wait(timeout=30)
    # The cancel took effect at that very event: END(CANCELLED) right after it, once, last.
    assert rec.kinds() == ["Begin", "Progress", "Progress", "Progress", "End"]
    assert isinstance(rec.end, lb.End) and isinstance(rec.end.error, lb.OperationCancelledError)
    assert not (world.backup / lb.ARCHIVE_FILE_NAME).exists()
    assert r.backup_licenses().wait(timeout=30).licenses == 10


def test_cancel_restore_from_inside_the_callback(world: World) -> None:
    a = world.device("A")
    populate(a.store, 10)
    a.backup_licenses().wait(timeout=30)
    b = world.device("B")
    b.progress_interval = 1
    rec = Recorder()

    def on_status(event: lb.StatusEvent) -> None:
        rec(event)
        if isinstance(event, lb.Progress) and event.done == 2:
            b.cancel_license_restore()

    with pytest.raises(lb.OperationCancelledError):
        b.restore_licenses(on_status=on_status).wait(timeout=30)
    assert rec.kinds() == ["Connecting", "Disconnecting", "Begin", "Progress", "Progress", "End"]
    assert b.store.license_count() == 0


@pytest.mark.parametrize("event_type", [lb.Begin, lb.Progress, lb.End])
@pytest.mark.parametrize("timeout", [None, 5.0])
def test_wait_inside_own_callback_raises_at_every_event(world: World, event_type: type, timeout: Any) -> None:
    """wait() from the operation's own callback raises RuntimeError at once (with or without a
    timeout, END included) instead of deadlocking; the operation then ends normally."""
    r = world.device("A")
    populate(r.store, 3)
    r.progress_interval = 1
    holder: List[lb.Operation] = []
    ready = threading.Event()
    seen: List[Any] = []

    def on_status(event: lb.StatusEvent) -> None:
        assert ready.wait(10)
        if isinstance(event, event_type) and not seen:
            started = time.monotonic()
            try:
                holder[0].wait(timeout)
                seen.append("returned")
            except RuntimeError as e:
                seen.append((str(e), time.monotonic() - started))

    holder.append(r.backup_licenses(on_status=on_status))
    ready.set()
    assert holder[0].wait(timeout=30).licenses == 3
    assert len(seen) == 1 and seen[0] != "returned", seen
    message, elapsed = seen[0]
    assert "would never return" in message and elapsed < 1.0


def test_wait_on_another_operation_inside_a_callback(world: World) -> None:
    """A callback may wait for a different operation (one that has ended) without blocking."""
    a = world.device("A")
    populate(a.store, 2)
    first = a.backup_licenses()
    first.wait(timeout=30)
    got: List[int] = []
    a.backup_licenses(overwrite=True, on_status=lambda e: got.append(first.wait(1).licenses)).wait(timeout=30)
    assert got and set(got) == {2}


@pytest.mark.parametrize("kind", ["backup", "restore"])
def test_store_reentry_from_callback_in_asyncio_mode(world: World, kind: str) -> None:
    """The same re-entry from a coroutine, where on_status runs on the event loop's thread."""
    import asyncio

    a = world.device("A")
    populate(a.store, 5)
    a.backup_licenses().wait(timeout=30)
    target = a if kind == "backup" else world.device("B")
    target.progress_interval = 1
    on_status = _reentrant_calls(target, "7c")

    async def run() -> lb.Summary:
        if kind == "backup":
            op = target.backup_licenses(overwrite=True, on_status=on_status)
        else:
            op = target.restore_licenses(on_status=on_status)
        return await asyncio.wait_for(op, 30)

    summary = asyncio.run(run())
    errors, calls = on_status.errors, on_status.calls  # type: ignore[attr-defined]
    assert errors == [], errors
    assert calls and calls[-1][0] == "End"
    assert summary.licenses == (6 if kind == "backup" else 5)
    assert all(c[5] < REENTRY_LIMIT_SECONDS for c in calls), calls
    assert target.store.verify() == target.store.license_count()
