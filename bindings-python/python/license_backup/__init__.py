"""license-backup: back up the DRM licenses of a device to a folder and restore them later,
on this device or another one, through a License Management Service that enforces the
restore quota. A re-creation of the Windows Media Format SDK's license backup and restore
(``WMCreateBackupRestorer``, ``IWMBackupRestoreProps``, ``IWMLicenseBackup``,
``IWMLicenseRestore``, ``IWMStatusCallback``) over one Rust engine.

Example::

    from license_backup import BackupRestorer, EmbeddedService, LicenseStore, Progress

    with LicenseStore("device.db") as store:
        restorer = BackupRestorer(store, EmbeddedService("service.db"))
        # or, a content provider's service: RemoteService("https://licenses.example.com", token=...)
        restorer.backup_path = "/media/usb"
        op = restorer.backup_licenses(overwrite=True, on_status=print)
        summary = op.wait()            # or, in a coroutine: summary = await op

Threading model
---------------
The engine runs each operation on its own worker thread and delivers its events from a
delivery thread. ``on_status`` is called on that thread, one event at a time and in order,
with the GIL taken for a batch of queued events at a time (released between batches); when
the operation was started from a coroutine it is called on the event loop's thread instead.
Each event carries ``emitted_ns``, when the engine emitted it (``time.monotonic_ns()`` clock).
``Operation.wait()`` and every call that touches the store or the service release the GIL.
An exception raised by ``on_status`` before END stops the operation (``CALLBACK_FAILED``,
nothing changed) and is re-raised by ``wait()``/``await`` as the ``__cause__`` of
:class:`CallbackFailedError`. One raised at END does not change the outcome: it goes to
``sys.unraisablehook`` (from asyncio, the loop's ``call_exception_handler``). At interpreter
exit, running operations are cancelled and allowed to end. See :class:`BackupRestorer`.

Secrets at rest
---------------
A store's device seed (which seals every content key) and a service's seed (which unwraps every
archive's data key) are held by a :class:`Protector`. The default, ``Protector.unprotected()``,
keeps the seed in clear in the file: whoever copies the file has every content key it seals.
``Protector.keyring()`` keeps a wrapping key in the platform keystore; any object with
``wrap``/``unwrap`` (:class:`HostProtector`) lets the application use its own::

    store = LicenseStore("device.db", protector=Protector.keyring())

Errors
------
Every engine error raises a subclass of :class:`LicenseBackupError` named after its code
(``BackupExistsError`` for ``BACKUP_EXISTS``), with ``.code`` (an :class:`ErrorCode`, which is an
``int``), ``.name`` and ``.message``. Codes about files are also the matching ``OSError`` subclass
(``PathNotFoundError`` is a ``FileNotFoundError``, ``NotWritableError`` a ``PermissionError``,
...) with ``errno`` and ``filename``; ``InvalidArgumentError`` is a ``ValueError`` and a
``TypeError``. A cancelled operation raises :class:`OperationCancelledError` (not
``asyncio.CancelledError``). Using a closed :class:`LicenseStore` raises ``ValueError``.
"""

from __future__ import annotations

import warnings

from ._errors import *  # noqa: F403 - the generated exception classes
from ._errors import __all__ as _error_names
from ._extras import HostProtector
from ._logging import logger as _logger  # noqa: F401 - forwards the engine's diagnostics to `logging`
from ._native import ARCHIVE_FILE_NAME, EmbeddedService, LicenseStore, Protector, RemoteService
from ._native import __version__ as __version__
from ._restorer import BackupRestorer, Operation, Properties, StatusCallback
from ._types import *  # noqa: F403 - the generated records and events
from ._types import __all__ as _type_names

__all__ = [
    "ARCHIVE_FILE_NAME",
    "BackupRestorer",
    "EmbeddedService",
    "HostProtector",
    "LicenseStore",
    "Operation",
    "Properties",
    "Protector",
    "RemoteService",
    "StatusCallback",
    *_type_names,
    *_error_names,
]



def __getattr__(name: str) -> object:
    # `CancelledError`, the name of CANCELLED's class before it was renamed: it shares its name
    # with asyncio's, so it is not in __all__ (a star import never brings it in to shadow
    # `asyncio.CancelledError`) and importing it warns.
    if name == "CancelledError":
        warnings.warn(
            "license_backup.CancelledError is deprecated: use OperationCancelledError "
            "(it is not asyncio.CancelledError)",
            DeprecationWarning,
            stacklevel=2,
        )
        return OperationCancelledError  # noqa: F405 - from the generated _errors
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Show the public classes as `license_backup.X` (in reprs and tracebacks), where users import them.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("license_backup._") and _obj.__module__ != "license_backup._native":
        _obj.__module__ = __name__
del _name, _obj
