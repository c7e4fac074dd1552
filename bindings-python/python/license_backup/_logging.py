"""The engine's diagnostics in the standard :mod:`logging` module.

The engine logs what it does (operations started and ended with their outcome code, the
service's connections and retries, restore reservations settled from the journal, refusals,
a status callback that failed, storage errors) to the logger ``license_backup`` and its
children, named after the engine's modules (``license_backup.operation``,
``license_backup.restore``, ``license_backup.storage``, ...). A :class:`logging.NullHandler`
is attached, so nothing is printed unless the application configures logging::

    import logging
    logging.basicConfig(level=logging.INFO)                        # everything INFO and above
    logging.getLogger("license_backup").setLevel(logging.WARNING)  # or: only what went wrong

Records are made on the thread that logged them (an operation's worker or delivery thread, or
the caller's). Each carries ``record.fields`` (a ``dict`` of the engine's structured values:
``operation``, ``outcome``, ``licenses``, ...) and ``record.target`` (the engine's module path).
No record holds a content key, a wrapped key, a token or any other secret.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional, Sequence, Tuple

from . import _native

#: The root logger of the engine's records.
logger = logging.getLogger("license_backup")
logger.addHandler(logging.NullHandler())

_LEVELS = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": 5,
}


def _forward(level: str, target: str, message: str, fields: Sequence[Tuple[str, str]]) -> None:
    """Called by the engine for each record: hands it to ``logging`` if its logger wants it."""
    name = target.replace("::", ".")
    log = logging.getLogger(name)
    number = _LEVELS.get(level, logging.INFO)
    if not log.isEnabledFor(number):
        return
    record = log.makeRecord(
        name, number, "(license_backup)", 0, message, (), None, extra={"fields": dict(fields), "target": target}
    )
    log.handle(record)


# The native registration is private to the package (not in the generated _native.pyi).
_set_log_sink: Callable[[Optional[Callable[[str, str, str, Sequence[Tuple[str, str]]], None]], str], None] = getattr(
    _native, "_set_log_sink"
)
_set_log_sink(_forward, "debug")
