"""asyncio: operations started from a coroutine are awaitable; callbacks run on the loop."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any

import pytest

import license_backup as lb
from _support import key_id, populate
from conftest import World


def test_async_backup_and_restore(world: World) -> None:
    a, b = world.device("A"), world.device("B")
    populate(a.store, 5, restricted=[4])
    a.progress_interval = 2

    async def main() -> tuple[lb.Summary, lb.Summary, list[lb.StatusEvent], list[lb.StatusEvent]]:
        loop_thread = threading.get_ident()
        backup_events: list[lb.StatusEvent] = []
        restore_events: list[lb.StatusEvent] = []
        heartbeat = 0

        def on_backup(event: lb.StatusEvent) -> None:
            assert threading.get_ident() == loop_thread, "on_status runs on the loop thread"
            backup_events.append(event)

        def on_restore(event: lb.StatusEvent) -> None:
            assert threading.get_ident() == loop_thread
            restore_events.append(event)

        async def beat() -> None:
            nonlocal heartbeat
            while True:
                heartbeat += 1
                await asyncio.sleep(0)

        beating = asyncio.create_task(beat())
        backup = await a.backup_licenses(on_status=on_backup)
        # await resolved after END: every callback has run.
        assert isinstance(backup_events[-1], lb.End) and backup_events[-1].summary == backup
        restore = await b.restore_licenses(on_status=on_restore)
        assert isinstance(restore_events[-1], lb.End) and restore_events[-1].summary == restore
        beating.cancel()
        assert heartbeat > 0, "the loop kept running while the operations ran"
        return backup, restore, backup_events, restore_events

    backup, restore, backup_events, restore_events = asyncio.run(main())
    assert (backup.licenses, backup.restricted) == (4, 1)
    assert backup_events == [
        lb.Begin("backup"),
        lb.Progress("backup", 2, 5),
        lb.RestrictedLicense(key_id(4), "Track 4"),
        lb.Progress("backup", 4, 5),
        lb.Progress("backup", 5, 5),
        lb.End("backup", backup, None),
    ]
    assert restore.licenses == 4
    assert [type(e).__name__ for e in restore_events] == ["Connecting", "Disconnecting", "Begin", "Progress", "End"]
    assert b.store.license_count() == 4


def test_await_many_events_all_delivered_before_resolution(world: World) -> None:
    a = world.device("A")
    populate(a.store, 300)
    a.progress_interval = 1

    async def main() -> int:
        seen: list[lb.StatusEvent] = []
        summary = await a.backup_licenses(on_status=seen.append)
        assert summary.licenses == 300
        return len(seen)

    assert asyncio.run(main()) == 1 + 300 + 1


def test_await_raises_the_error_and_chains_callback_exceptions(world: World) -> None:
    a = world.device("A")
    populate(a.store, 3)

    async def main() -> None:
        await a.backup_licenses()
        with pytest.raises(lb.BackupExistsError):
            await a.backup_licenses()

        def boom(event: lb.StatusEvent) -> None:
            if isinstance(event, lb.Begin):
                raise ZeroDivisionError("on the loop")

        with pytest.raises(lb.CallbackFailedError) as info:
            await a.backup_licenses(overwrite=True, on_status=boom)
        assert isinstance(info.value.__cause__, ZeroDivisionError)

    asyncio.run(main())


def test_async_callbacks_can_cancel(world: World) -> None:
    a = world.device("A")
    populate(a.store, 10)
    a.progress_interval = 1

    async def main() -> list[lb.StatusEvent]:
        events: list[lb.StatusEvent] = []

        def on_status(event: lb.StatusEvent) -> None:
            events.append(event)
            if isinstance(event, lb.Progress) and event.done == 3:
                a.cancel_license_backup()

        with pytest.raises(lb.OperationCancelledError):
            await a.backup_licenses(on_status=on_status)
        return events

    events = asyncio.run(main())
    assert [type(e).__name__ for e in events] == ["Begin", "Progress", "Progress", "Progress", "End"]


def test_cancelling_the_awaiting_task_cancels_the_operation(world: World) -> None:
    a = world.device("A")
    populate(a.store, 20)
    a.progress_interval = 1

    async def main() -> None:
        started = asyncio.Event()

        def on_status(event: lb.StatusEvent) -> None:
            started.set()
            time.sleep(0.01)  # slow enough that the operation is still running when cancelled

        op = a.backup_licenses(on_status=on_status)

        async def waiter() -> lb.Summary:
            return await op

        task = asyncio.create_task(waiter())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The operation itself was cancelled (its callbacks still run on this loop meanwhile).
        with pytest.raises(lb.OperationCancelledError):
            await asyncio.to_thread(op.wait, 30)

    asyncio.run(main())


def test_blocking_wait_on_the_loop_is_refused(world: World) -> None:
    a = world.device("A")
    populate(a.store, 2)

    async def main() -> None:
        op = a.backup_licenses(on_status=lambda e: None)
        with pytest.raises(RuntimeError, match="await"):
            op.wait()
        await op
        assert op.wait().licenses == 2  # fine once it is done

    asyncio.run(main())


def test_operation_started_without_callback_in_a_coroutine(world: World) -> None:
    a = world.device("A")
    populate(a.store, 2)

    async def main() -> lb.Summary:
        op = a.backup_licenses()
        return op.wait(30)  # no callbacks to run on the loop: blocking is allowed

    assert asyncio.run(main()).licenses == 2


def test_closed_loop_ends_the_operation(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop that closes while its operation still runs does not hang the engine. END cannot
    reach the closed loop either: that goes to sys.unraisablehook (the END rule)."""
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    a = world.device("A")
    populate(a.store, 50)
    a.progress_interval = 1
    holder: list[lb.Operation] = []

    async def main() -> None:
        holder.append(a.backup_licenses(on_status=lambda e: None))
        # return at once: asyncio.run closes the loop with the operation running

    asyncio.run(main())
    with pytest.raises((lb.CallbackFailedError, lb.BackupExistsError)) as info:
        holder[0].wait(30)
    if isinstance(info.value, lb.CallbackFailedError):
        assert isinstance(info.value.__cause__, RuntimeError)
    # (None when END happened to be delivered before the loop closed.)
    assert len(unraisable) <= 1 and all(isinstance(u.exc_value, RuntimeError) for u in unraisable)


def test_threaded_wait_of_an_async_operation_from_another_thread(world: World) -> None:
    a = world.device("A")
    populate(a.store, 3)

    async def main() -> lb.Summary:
        op = a.backup_licenses(on_status=lambda e: None)
        return await asyncio.to_thread(op.wait, 30)

    assert asyncio.run(main()).licenses == 3


def test_events_reach_the_loop_a_batch_at_a_time(world: World) -> None:
    """The delivery thread hands the loop each batch of queued events with one
    call_soon_threadsafe (not one per event), in order; every callback has run, after its
    event was emitted, before the awaited operation resolves."""
    a = world.device("A")
    populate(a.store, 300, restricted=[10, 200])
    a.progress_interval = 1

    async def main() -> tuple[int, list[tuple[lb.StatusEvent, int]]]:
        loop = asyncio.get_running_loop()
        handoffs = 0
        original = loop.call_soon_threadsafe

        def counting(*args: Any, **kwargs: Any) -> asyncio.Handle:
            nonlocal handoffs
            handoffs += 1
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        got: list[tuple[lb.StatusEvent, int]] = []

        def on_status(event: lb.StatusEvent) -> None:
            got.append((event, time.monotonic_ns()))
            if isinstance(event, lb.Progress) and event.done == 1:
                time.sleep(0.5)  # the engine queues the rest meanwhile: they arrive in batches

        await a.backup_licenses(on_status=on_status)
        return handoffs, got

    handoffs, got = asyncio.run(main())
    events = [e for e, _ in got]
    assert len(events) == 1 + 300 + 2 + 1 and isinstance(events[-1], lb.End)
    assert [e.done for e in events if isinstance(e, lb.Progress)] == list(range(1, 301))
    assert handoffs <= len(events) // 2, f"{handoffs} hand-offs to the loop for {len(events)} events"
    assert all(e.emitted_ns <= delivered for e, delivered in got)
    assert [e.emitted_ns for e in events] == sorted(e.emitted_ns for e in events)


def test_a_restore_cancelled_by_its_task_after_the_service_answered_costs_nothing(world: World) -> None:
    a = world.device("A")
    populate(a.store, 5)
    a.backup_licenses().wait()
    b = world.device("B")

    async def main() -> None:
        answered = asyncio.Event()

        def on_status(event: lb.StatusEvent) -> None:
            if isinstance(event, lb.Disconnecting):
                answered.set()
                time.sleep(0.05)  # the task is cancelled while the restore holds its grant

        op = b.restore_licenses(on_status=on_status)

        async def waiter() -> lb.Summary:
            return await op

        task = asyncio.create_task(waiter())
        await answered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(lb.OperationCancelledError):
            await asyncio.to_thread(op.wait, 30)

    asyncio.run(main())
    assert b.store.license_count() == 0
    audit = world.service.audit()
    assert (audit.pending, audit.confirmed, audit.released, audit.placements) == (0, 0, 1, 0), audit
    quota = b.restore_quota()
    assert (quota.restores_remaining, quota.allowed, quota.device_already_counted) == (3, True, False)
    assert b.restore_quota(individualize=True) == quota
