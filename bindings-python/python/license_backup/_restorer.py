"""The backup restorer, its property mapping, and operations (threads and asyncio)."""

from __future__ import annotations

import asyncio
import atexit
import threading
from typing import (
    Any,
    Callable,
    Generator,
    Iterator,
    MutableMapping,
    Optional,
    Set,
    Union,
)

from . import _native
from ._native import EmbeddedService, LicenseStore, RemoteService
from ._errors import InvalidArgumentError
from ._types import (
    BackupRestorerOperations,
    End,
    OperationKind,
    PropertyAccessors,
    PropertyValue,
    Quota,
    StatusEvent,
    Summary,
    _PathArg,
)

StatusCallback = Callable[[StatusEvent], object]
"""What ``on_status`` takes: a callable that receives each :data:`StatusEvent`."""

# How often a worker waiting for the event loop checks whether it should give up.
_POLL_SECONDS = 0.05
# How long the exit hook waits for cancelled operations to end.
_EXIT_GRACE_SECONDS = 10.0

_live_lock = threading.Lock()
_live: Set[_native.Operation] = set()
_shutting_down = threading.Event()


def _track(op: _native.Operation) -> None:
    with _live_lock:
        for finished in [o for o in _live if o.done]:
            _live.discard(finished)
        _live.add(op)


@atexit.register
def _cancel_at_exit() -> None:
    """At interpreter exit, cancel running operations, let them end, then shut the gate.

    atexit handlers run while the interpreter is still whole, so the workers can deliver their
    last events (END included). Then the native gate is closed: from that moment no engine
    thread attaches to the interpreter (a callback would fail the operation instead), and this
    waits until none is attached, so nothing of ours touches Python while it finalizes.
    """
    _shutting_down.set()
    with _live_lock:
        running = [o for o in _live if not o.done]
    for op in running:
        op.cancel()
    for op in running:
        try:
            op.wait(_EXIT_GRACE_SECONDS)
        except BaseException:  # noqa: BLE001 - its outcome no longer matters to anyone
            pass
    _native._close_gate(_EXIT_GRACE_SECONDS)


class _LoopDispatcher:
    """Runs ``on_status`` on an asyncio event loop's thread, for an operation started there.

    The engine's delivery thread calls this (with the GIL) once per batch of events, with the
    list of them; it hands the whole batch to the loop with one ``call_soon_threadsafe`` and
    waits, the GIL released, until the loop has run the callback for each event in order, so
    events stay in order, and an exception from the callback stops the operation exactly as in
    the threaded mode (the rest of the batch is not delivered); one at END goes to the loop's
    ``call_exception_handler`` instead and the outcome stands. After each event the loop
    checks whether the operation is being cancelled (what the engine's stop check reports while
    a batch runs, a callback failure aside) and then drops the rest of the batch, so a callback
    that cancels at the n-th event sees END next. If the loop closes (or the interpreter
    exits) first, the callback fails and the operation ends.
    """

    __slots__ = ("_loop", "_on_status", "_native")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_status: StatusCallback) -> None:
        self._loop = loop
        self._on_status = on_status
        # Set by `_started` right after the start: before the loop runs any batch (the loop
        # runs them on this thread, once the starting code has returned to it).
        self._native: Optional[_native.Operation] = None

    def __call__(self, events: list[StatusEvent]) -> None:
        done = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            on_status, native = self._on_status, self._native
            event: Optional[StatusEvent] = None
            try:
                for event in events:
                    on_status(event)
                    if native is not None and native.cancel_requested:
                        break
            except BaseException as exc:  # noqa: BLE001 - handed to the engine, re-raised by wait
                if isinstance(event, End):
                    # END never changes the outcome: the loop's handler reports the exception.
                    self._loop.call_exception_handler(
                        {"message": f"on_status raised at the END of the {event.operation}", "exception": exc}
                    )
                else:
                    failure.append(exc)
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)  # RuntimeError once the loop is closed
        while not done.wait(_POLL_SECONDS):
            if self._loop.is_closed():
                raise RuntimeError("the event loop that runs on_status was closed")
            if _shutting_down.is_set():
                raise RuntimeError("the interpreter is exiting")
        if failure:
            raise failure[0]


class Operation:
    """A running (or finished) backup or restore.

    * ``wait(timeout=None)`` blocks with the GIL released until the operation has ended and
      every ``on_status`` call has returned, then returns the :class:`Summary` or raises the
      error (a :class:`LicenseBackupError` subclass; ``TimeoutError`` when ``timeout`` passes).
    * ``await op`` does the same from asyncio without blocking the loop. Cancelling the task
      that awaits also cancels the operation.
    * ``cancel()`` asks the operation to stop: it then ends with ``OperationCancelledError``.
    * ``done`` tells whether it has ended.

    When ``on_status`` raised before END, the operation ended with ``CALLBACK_FAILED``: ``wait()``
    and ``await`` raise :class:`CallbackFailedError` whose ``__cause__`` is the callback's
    exception (``raise CallbackFailedError(...) from exc``). An exception at END leaves the
    outcome as it was (see :class:`BackupRestorer`).
    """

    __slots__ = ("_native", "_loop", "__weakref__")

    def __init__(self, native: _native.Operation, loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        self._native = native
        self._loop = loop

    @property
    def operation(self) -> OperationKind:
        """``"backup"`` or ``"restore"``."""
        return self._native.operation

    @property
    def done(self) -> bool:
        """Whether the operation has ended (and its END event has been delivered)."""
        return self._native.done

    def cancel(self) -> None:
        """Asks the operation to stop; it ends with ``OperationCancelledError`` unless it already ended."""
        self._native.cancel()

    def wait(self, timeout: Optional[float] = None) -> Summary:
        """Waits for the end; returns the summary or raises the operation's error.

        Ctrl-C interrupts the wait with ``KeyboardInterrupt``; the operation itself goes on
        until you ``cancel()`` it.
        """
        loop = self._loop
        if loop is not None and not self.done and loop.is_running() and _loop_thread_is_current(loop):
            raise RuntimeError(
                "wait() would block the event loop that runs this operation's callbacks; use `await op`"
            )
        return self._native.wait(timeout)

    def add_done_callback(self, fn: Callable[[Operation], object]) -> None:
        """Calls ``fn(op)`` once the operation has ended (from a helper thread, or at once)."""
        if not callable(fn):
            raise InvalidArgumentError(f"fn must be callable, not {fn!r:.40}")
        self._native.add_done_callback(lambda: fn(self))

    def __await__(self) -> Generator[Any, None, Summary]:
        return self._wait_async().__await__()

    async def _wait_async(self) -> Summary:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not future.done():
                future.set_result(None)

        def on_done() -> None:
            # From the native helper thread. Queued behind every on_status call this loop
            # runs, so every callback has run before the awaiting coroutine resumes.
            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:
                pass  # the loop is closed: nobody awaits any more

        self._native.add_done_callback(on_done)
        try:
            await future
        except asyncio.CancelledError:
            self.cancel()
            raise
        return self._native.wait(0)

    def __repr__(self) -> str:
        return f"<Operation {self._native.operation} {'done' if self.done else 'running'}>"


def _loop_thread_is_current(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class Properties(MutableMapping[str, PropertyValue]):
    """The restorer's properties as a mapping: ``restorer.properties["BackupPath"] = "/mnt/usb"``.

    A path property takes ``str``, ``bytes`` or a path-like object (read as ``os.fsencode`` reads
    it) and reads back as ``str`` (``os.fsdecode``: surrogate escapes for a name that is not UTF-8).

    Iteration follows the order in which properties were first set. Reading a known property
    that is not set raises ``KeyError``; an unknown name raises :class:`UnknownPropertyError`
    (itself a ``KeyError``), and a wrongly typed value :class:`WrongPropertyTypeError`.
    """

    __slots__ = ("_restorer",)

    def __init__(self, restorer: _native.BackupRestorer) -> None:
        self._restorer = restorer

    def __getitem__(self, name: str) -> PropertyValue:
        value = self._restorer.get_property(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: Union[PropertyValue, _PathArg]) -> None:
        self._restorer.set_property(name, value)

    def __delitem__(self, name: str) -> None:
        if not self._restorer.remove_property(name):
            raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter([self._restorer.property_by_index(i)[0] for i in range(self._restorer.property_count())])

    def __len__(self) -> int:
        return self._restorer.property_count()

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in list(self)

    def clear(self) -> None:
        self._restorer.remove_all_properties()

    def __repr__(self) -> str:
        return f"Properties({dict(self.items())!r})"


class BackupRestorer(PropertyAccessors, BackupRestorerOperations):
    """Backs up and restores the licenses of a :class:`LicenseStore` (``WMCreateBackupRestorer``).

    Properties (``IWMBackupRestoreProps``) are set by name (``set_property``, or the
    ``properties`` mapping) or through attributes named after them (``backup_path``,
    ``restore_path``, ``progress_interval``), which are views of the same properties.

    Threading model
    ---------------
    ``backup_licenses`` and ``restore_licenses`` start the operation on an engine worker
    thread and return an :class:`Operation` at once. Cheap checks (``PathNotSetError``,
    ``BusyError``) raise right away; everything else arrives as status events, then END.

    * Called outside asyncio, ``on_status(event)`` runs **on the operation's delivery
      thread**, with the GIL taken for each batch of events that queued up meanwhile (and
      released between batches); the engine goes on meanwhile, and waits for every event to
      be delivered before it commits anything. Keep it short, or hand the event to your own
      thread or GUI loop.
    * Called from a coroutine (an asyncio loop running in the calling thread), the operation is
      bound to that loop: ``on_status`` runs **on the loop's thread**, in order, and
      ``await op`` resolves after the last callback (END) has run. Do not call the blocking
      ``wait()`` from that loop.
    * An exception raised by ``on_status`` before END stops the operation, which ends with
      ``CALLBACK_FAILED``, nothing changed (END is still delivered); ``wait()``/``await`` then
      raise :class:`CallbackFailedError` chained ``from`` your exception.
    * The END callback never changes the outcome: when it raises, the summary (or the error)
      stands and the exception goes to ``sys.unraisablehook`` (from a coroutine: the loop's
      ``call_exception_handler``).
    * Waiting releases the GIL; other Python threads run meanwhile.
    * At interpreter exit, operations still running are cancelled and allowed to end.
    """

    __slots__ = ("_native", "_properties")

    def __init__(self, store: LicenseStore, service: Union[EmbeddedService, RemoteService]) -> None:
        self._native = _native.BackupRestorer(store, service)
        self._properties = Properties(self._native)

    @property
    def store(self) -> LicenseStore:
        """The store this restorer works on."""
        return self._native.store

    @property
    def service(self) -> Union[EmbeddedService, RemoteService]:
        """The License Management Service that authorizes restores."""
        return self._native.service

    @property
    def properties(self) -> Properties:
        """The properties, as a mutable mapping."""
        return self._properties

    # --- properties by name (IWMBackupRestoreProps) ----------------------------------------

    def set_property(self, name: str, value: Union[PropertyValue, _PathArg]) -> None:
        """Sets a property (``str``, ``bytes`` or path-like for paths, ``int`` for counts, ``bool``)."""
        self._native.set_property(name, value)

    def get_property(self, name: str) -> Optional[PropertyValue]:
        """A property's value; ``None`` if it is a known property that is not set."""
        return self._native.get_property(name)

    def property_by_index(self, index: int) -> tuple[str, PropertyValue]:
        """The ``index``-th property set, as ``(name, value)``; ``InvalidArgumentError`` past the end."""
        return self._native.property_by_index(index)

    def property_count(self) -> int:
        """How many properties are set."""
        return self._native.property_count()

    def _set_or_remove(self, name: str, value: Optional[Union[PropertyValue, _PathArg]]) -> None:
        if value is None:
            self._native.remove_property(name)
        else:
            self._native.set_property(name, value)

    # --- operations ---------------------------------------------------------------------------

    def backup_licenses(self, overwrite: bool = False, on_status: Optional[StatusCallback] = None) -> Operation:
        """Starts backing up every license that may be backed up to ``backup_path``.

        Without ``overwrite`` an archive already in the folder makes it end with
        ``BackupExistsError`` and is left as it was. See the class docstring for threads.
        """
        callback, loop = _bind(on_status)
        native = self._native.backup_licenses(overwrite, callback, batched=isinstance(callback, _LoopDispatcher))
        return _started(native, callback, loop)

    def restore_licenses(
        self,
        individualize: bool = False,
        replace_existing: bool = False,
        on_status: Optional[StatusCallback] = None,
    ) -> Operation:
        """Starts restoring the archive in ``restore_path`` onto this device.

        ``individualize`` gives the device a fresh identity and re-binds every license to it;
        ``replace_existing`` replaces licenses the device already has (otherwise they are kept
        and counted as skipped).
        """
        callback, loop = _bind(on_status)
        native = self._native.restore_licenses(
            individualize, replace_existing, callback, batched=isinstance(callback, _LoopDispatcher)
        )
        return _started(native, callback, loop)

    def restore_quota(self, *, individualize: bool = False) -> Quota:
        """What the restore quota allows for the archive in ``restore_path`` onto this device
        (onto a new identity of it, which counts as this device, with ``individualize``)."""
        return self._native.restore_quota(individualize=individualize)

    def __repr__(self) -> str:
        return f"BackupRestorer({self.store!r}, {self.service!r})"


def _bind(
    on_status: Optional[StatusCallback],
) -> tuple[Optional[Callable[[Any], object]], Optional[asyncio.AbstractEventLoop]]:
    """The callable the engine calls, and the event loop that runs it (``None``: the engine's
    delivery thread). With a loop, it is a :class:`_LoopDispatcher`, which takes the events a
    batch at a time (``batched=True``); otherwise ``on_status`` itself."""
    try:
        loop: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if on_status is not None and not callable(on_status):
        raise InvalidArgumentError(f"on_status must be callable, not {on_status!r:.40}")
    if loop is None or on_status is None:
        return on_status, None
    return _LoopDispatcher(loop, on_status), loop


def _started(
    native: _native.Operation, callback: Optional[Callable[[Any], object]], loop: Optional[asyncio.AbstractEventLoop]
) -> Operation:
    if isinstance(callback, _LoopDispatcher):
        callback._native = native
    _track(native)
    return Operation(native, loop)
