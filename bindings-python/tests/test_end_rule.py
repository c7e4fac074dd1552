"""The END rule: the END callback never changes an operation's outcome. When it raises, the work
stands, wait()/await return (or raise the operation's own error) and the exception goes to
sys.unraisablehook (asyncio: the loop's exception handler). Before END, a raise still stops the
operation with CALLBACK_FAILED, nothing changed."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Dict, List

import pytest

import license_backup as lb
from _support import key_id, populate
from conftest import World


class Boom(Exception):
    pass


def raise_at(kind: type) -> Any:
    def on_status(event: lb.StatusEvent) -> None:
        if isinstance(event, kind):
            raise Boom(f"raised at {kind.__name__}")

    return on_status


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    caught: List[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", caught.append)
    return caught


def test_threaded_end_callback_raising_keeps_the_backup_and_the_restore(world: World, unraisable: List[Any]) -> None:
    a, b = world.device("A"), world.device("B")
    populate(a.store, 4)
    summary = a.backup_licenses(on_status=raise_at(lb.End)).wait(30)
    assert summary.licenses == 4 and (world.backup / lb.ARCHIVE_FILE_NAME).is_file()
    assert len(unraisable) == 1 and isinstance(unraisable[0].exc_value, Boom)
    assert unraisable[0].object is not None  # the callback, named by the hook's message
    restored = b.restore_licenses(on_status=raise_at(lb.End)).wait(30)
    assert restored.licenses == 4 and b.store.content_key(key_id(3)) == a.store.content_key(key_id(3))
    assert len(unraisable) == 2 and isinstance(unraisable[1].exc_value, Boom)
    # The restore was confirmed with the service: B counts, nothing is left pending.
    assert b.restore_quota().device_already_counted and world.service.audit().pending == 0


def test_threaded_end_callback_raising_after_a_failure_keeps_that_error(world: World, unraisable: List[Any]) -> None:
    a = world.device("A")
    populate(a.store, 1)
    a.backup_licenses().wait(30)
    with pytest.raises(lb.BackupExistsError):  # not CallbackFailedError
        a.backup_licenses(on_status=raise_at(lb.End)).wait(30)
    assert len(unraisable) == 1 and isinstance(unraisable[0].exc_value, Boom)


def test_threaded_raise_before_end_still_stops_with_callback_failed(world: World, unraisable: List[Any]) -> None:
    a = world.device("A")
    populate(a.store, 3)
    with pytest.raises(lb.CallbackFailedError) as info:
        a.backup_licenses(on_status=raise_at(lb.Begin)).wait(30)
    assert isinstance(info.value.__cause__, Boom)
    assert not (world.backup / lb.ARCHIVE_FILE_NAME).exists() and unraisable == []


def test_asyncio_end_callback_raising_goes_to_the_loop_handler(world: World, unraisable: List[Any]) -> None:
    a, b = world.device("A"), world.device("B")
    populate(a.store, 4)
    handled: List[Dict[str, Any]] = []

    async def main() -> tuple[lb.Summary, lb.Summary]:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: handled.append(context))
        backup = await a.backup_licenses(on_status=raise_at(lb.End))
        restore = await b.restore_licenses(on_status=raise_at(lb.End))
        return backup, restore

    backup, restore = asyncio.run(main())
    assert backup.licenses == 4 and restore.licenses == 4
    assert b.store.license_count() == 4
    assert [type(c["exception"]) for c in handled] == [Boom, Boom]
    assert "END of the backup" in handled[0]["message"] and "END of the restore" in handled[1]["message"]
    assert unraisable == []


def test_asyncio_raise_before_end_still_stops_with_callback_failed(world: World) -> None:
    a = world.device("A")
    populate(a.store, 3)
    handled: List[Dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: handled.append(context))
        with pytest.raises(lb.CallbackFailedError) as info:
            await a.backup_licenses(on_status=raise_at(lb.Progress))
        assert isinstance(info.value.__cause__, Boom)

    asyncio.run(main())
    assert handled == [] and not (world.backup / lb.ARCHIVE_FILE_NAME).exists()
