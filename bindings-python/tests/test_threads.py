"""Threads: the GIL while waiting, exceptions in callbacks, interpreter exit, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pytest

import license_backup as lb
from _support import Recorder, populate
from conftest import World


def test_wait_releases_the_gil(world: World) -> None:
    """A Python thread runs while wait() blocks; the callback (which needs the GIL on the
    worker) can only finish because that thread made progress, so a wait holding the GIL would
    end in TimeoutError instead of a summary."""
    r = world.device("A")
    populate(r.store, 4)
    counter = 0
    stop = threading.Event()
    reached = threading.Event()

    def count() -> None:
        nonlocal counter
        while not stop.is_set():
            counter += 1
            if counter == 200_000:
                reached.set()

    def on_status(event: lb.StatusEvent) -> None:
        if isinstance(event, lb.Begin):
            # Blocks the engine until the Python thread has counted far: it can only do so
            # while the main thread waits with the GIL released.
            assert reached.wait(20), "the Python thread made no progress while wait() blocked"

    counter_thread = threading.Thread(target=count)
    counter_thread.start()
    try:
        op = r.backup_licenses(on_status=on_status)
        before = counter
        summary = op.wait(timeout=30)
        assert summary.licenses == 4
        assert counter - before >= 1  # progress during the wait
        assert reached.is_set()
    finally:
        stop.set()
        counter_thread.join()


def test_worker_keeps_one_thread_state_per_operation(world: World) -> None:
    """The worker keeps one Python thread state from its first event to END (one per event
    cost more than the callback), then gives it up: a threading.local set in the callback
    lasts for the operation, and what it holds is freed once the operation has ended."""
    r = world.device("A")
    populate(r.store, 20)
    r.progress_interval = 1
    local = threading.local()
    counts: list[int] = []
    tokens: list[weakref.ref[object]] = []

    class Token:
        pass

    def on_status(event: lb.StatusEvent) -> None:
        if not hasattr(local, "count"):
            local.count = 0
            local.token = Token()
            tokens.append(weakref.ref(local.token))
        local.count += 1
        counts.append(local.count)

    r.backup_licenses(on_status=on_status).wait(timeout=30)
    assert len(counts) >= 22 and counts == list(range(1, len(counts) + 1)), counts
    assert len(tokens) == 1 and tokens[0]() is None, "the worker's thread state outlived END"


def test_store_calls_release_the_gil(world: World) -> None:
    """Store calls run detached: many Python threads using one store concurrently finish."""
    r = world.device("A")
    populate(r.store, 20)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(20):
                assert len(r.store.list_licenses()) == 20
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and not any(t.is_alive() for t in threads)


def test_callback_exception_cancels_cleanly_and_is_chained(world: World) -> None:
    r = world.device("A")
    populate(r.store, 6)
    r.progress_interval = 1
    rec = Recorder()

    class Boom(Exception):
        pass

    def on_status(event: lb.StatusEvent) -> None:
        rec(event)
        if isinstance(event, lb.Progress) and event.done == 2:
            raise Boom("user code failed")

    op = r.backup_licenses(on_status=on_status)
    with pytest.raises(lb.CallbackFailedError) as info:
        op.wait()
    exc = info.value
    assert exc.code == lb.ErrorCode.CALLBACK_FAILED
    assert isinstance(exc.__cause__, Boom) and str(exc.__cause__) == "user code failed"
    assert "Boom: user code failed" in exc.message
    assert exc.__cause__.__traceback__ is not None  # the user's traceback is kept
    # The operation stopped at once: END came right after the failing event, exactly once.
    assert rec.kinds() == ["Begin", "Progress", "Progress", "End"]
    assert isinstance(rec.end, lb.End) and isinstance(rec.end.error, lb.CallbackFailedError)
    assert not (world.backup / lb.ARCHIVE_FILE_NAME).exists()
    # Waiting again raises again, chained again.
    with pytest.raises(lb.CallbackFailedError) as again:
        op.wait()
    assert isinstance(again.value.__cause__, Boom)
    # The restorer is usable afterwards.
    assert r.backup_licenses().wait().licenses == 6


def test_exception_in_the_end_callback(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    r = world.device("A")
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    def on_status(event: lb.StatusEvent) -> None:
        if isinstance(event, lb.End):
            raise KeyError("late")

    # The END rule: the archive was written before END, so the backup succeeded; the
    # callback's exception goes to sys.unraisablehook (test_end_rule.py covers the rest).
    assert r.backup_licenses(on_status=on_status).wait().licenses == 0
    assert (world.backup / lb.ARCHIVE_FILE_NAME).exists()
    assert [type(u.exc_value) for u in unraisable] == [KeyError]


def test_wait_inside_own_callback_is_refused(world: World) -> None:
    r = world.device("A")
    holder: list[lb.Operation] = []
    started = threading.Event()
    errors: list[BaseException] = []

    def on_status(event: lb.StatusEvent) -> None:
        started.wait(10)
        if isinstance(event, lb.Begin):
            try:
                holder[0].wait()
            except RuntimeError as e:
                errors.append(e)

    holder.append(r.backup_licenses(on_status=on_status))
    started.set()
    holder[0].wait(30)
    assert len(errors) == 1 and "would never return" in str(errors[0])


def _run(script: str, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(script)
    return subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )


EXIT_SCRIPT = """
    import sys, time
    from pathlib import Path
    import license_backup as lb
    root = Path(sys.argv[1])
    (root / "backup").mkdir()
    store = lb.LicenseStore(root / "a.db")
    store.add_licenses([
        lb.NewLicense(f"5a000000-0000-0000-0000-{{i:012x}}", b"k", lb.Rights(), "i", 0) for i in range(1, 201)
    ])
    r = lb.BackupRestorer(store, lb.EmbeddedService(root / "s.db"))
    r.backup_path = root / "backup"
    r.progress_interval = 1
    log = open(root / "events.log", "w", buffering=1)
    def on_status(event):
        log.write(type(event).__name__ + "\\n")
        time.sleep({sleep})
    op = r.backup_licenses(on_status=on_status)
    time.sleep(0.3)
    print("exiting with the operation running:", not op.done, flush=True)
    {exit}
"""


@pytest.mark.parametrize("how", ["return", "sys.exit(3)", "raise SystemExit(0)"])
def test_interpreter_exit_while_an_operation_runs(tmp_path: Path, how: str) -> None:
    exit_stmt = "" if how == "return" else how
    result = _run(EXIT_SCRIPT.format(sleep=0.02, exit=exit_stmt), tmp_path)
    assert result.returncode == (3 if "3" in how else 0), result.stderr
    assert "exiting with the operation running: True" in result.stdout
    assert "Fatal" not in result.stderr and "panicked" not in result.stderr, result.stderr
    events = (tmp_path / "events.log").read_text().split()
    # The exit hook cancelled the operation and let it end: END delivered, last, once.
    assert events[0] == "Begin" and events[-1] == "End" and events.count("End") == 1
    assert len(events) < 100, "the operation was not cancelled at exit"
    assert not (tmp_path / "backup" / lb.ARCHIVE_FILE_NAME).exists()


def test_interpreter_exit_with_a_callback_that_outlives_the_grace_period(tmp_path: Path) -> None:
    """A callback that sleeps past the exit hook's patience: nothing hangs or crashes."""
    script = EXIT_SCRIPT.format(sleep=0.02, exit="").replace(
        "time.sleep(0.3)", "time.sleep(0.3); import license_backup._restorer as m; m._EXIT_GRACE_SECONDS = 0.2"
    )
    script = script.replace("time.sleep(0.02)", "time.sleep(1.0 if event.__class__.__name__ == 'Progress' else 0)")
    started = time.monotonic()
    result = _run(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Fatal" not in result.stderr and "panicked" not in result.stderr, result.stderr
    assert time.monotonic() - started < 30


def test_interpreter_exit_native_module_without_facade_hook(tmp_path: Path) -> None:
    """Even with the exit hook gone, a worker meeting a finalizing interpreter does not crash
    the process (pyo3's try_attach refuses, the operation ends with CALLBACK_FAILED)."""
    script = EXIT_SCRIPT.format(sleep=0.02, exit="").replace(
        "op = r.backup_licenses", "import atexit, license_backup._restorer as m; atexit.unregister(m._cancel_at_exit)\n    op = r.backup_licenses"
    )
    for _ in range(3):
        result = _run(script, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Fatal" not in result.stderr and "panicked" not in result.stderr, result.stderr
        for p in tmp_path.iterdir():
            if p.is_dir():
                for q in p.iterdir():
                    q.unlink()
                p.rmdir()
            else:
                p.unlink()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_interrupts_wait(tmp_path: Path) -> None:
    script = """
        import os, signal, sys, threading, time
        from pathlib import Path
        import license_backup as lb
        # A shell's background job starts with SIGINT ignored, and Python then installs no
        # KeyboardInterrupt handler: restore Python's own, as an interactive session has it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        root = Path(sys.argv[1])
        (root / "backup").mkdir()
        store = lb.LicenseStore(root / "a.db")
        r = lb.BackupRestorer(store, lb.EmbeddedService(root / "s.db"))
        r.backup_path = root / "backup"
        release = threading.Event()
        op = r.backup_licenses(on_status=lambda e: release.wait(30))
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        try:
            op.wait()
        except KeyboardInterrupt:
            print(f"interrupted after {time.monotonic() - started:.2f} s; running: {not op.done}")
        op.cancel()
        release.set()
        try:
            op.wait()
        except lb.OperationCancelledError:
            print("cancelled")
    """
    result = _run(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "interrupted after 0." in result.stdout and "running: True" in result.stdout, result.stdout
    assert "cancelled" in result.stdout


@pytest.mark.parametrize("how", ["cancel", "raise"])
def test_stop_in_the_middle_of_a_batch(world: World, how: str) -> None:
    """Events arrive in batches (what queued up while the callback ran); a cancel or an
    exception at one event of a batch drops the rest of it: END comes right after."""
    r = world.device("A")
    populate(r.store, 300)
    r.progress_interval = 1
    rec = Recorder()
    holder: list[lb.Operation] = []

    def on_status(event: lb.StatusEvent) -> None:
        rec(event)
        if isinstance(event, lb.Progress) and event.done == 1:
            time.sleep(0.3)  # the engine queues the next events meanwhile: one batch
        if isinstance(event, lb.Progress) and event.done == 100:
            if how == "raise":
                raise ValueError("stop here")
            holder[0].cancel()

    holder.append(r.backup_licenses(on_status=on_status))
    with pytest.raises(lb.OperationCancelledError if how == "cancel" else lb.CallbackFailedError) as info:
        holder[0].wait(timeout=30)
    assert rec.kinds() == ["Begin", *["Progress"] * 100, "End"]
    assert [e.done for e in rec.events if isinstance(e, lb.Progress)] == list(range(1, 101))
    if how == "raise":
        assert isinstance(info.value.__cause__, ValueError)
