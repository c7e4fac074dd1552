"""Records and status events: small immutable value classes.

The native module builds these objects (positionally, in field order) from the engine's
records and events, so their fields mirror ``core/interface.json`` one to one; the test suite
checks that they do. Events support structural pattern matching (Python 3.10+)::

    match event:
        case Progress(operation, done, total):
            print(f"{operation}: {done}/{total}")
        case RestrictedLicense(key_id, title):
            print(f"{title or key_id} may not be backed up")
        case End(operation, summary, None):
            print(f"{operation} done: {summary.licenses} licenses")
        case End(operation, _, error):
            print(f"{operation} failed: {error}")

Every event delivered by an operation also carries ``emitted_ns`` (``core/interface.json``
``event_metadata``): when the engine emitted it, on the clock of ``time.monotonic_ns()``, so
``time.monotonic_ns() - event.emitted_ns`` is how long it waited for delivery. It is not a
field: it takes no part in construction, equality, ``repr`` or pattern matching, and an event
made in Python has ``emitted_ns == 0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Optional, Protocol, Union

if TYPE_CHECKING:
    from ._errors import ErrorCode, LicenseBackupError

OperationKind = Literal["backup", "restore"]
"""Which operation an event or an :class:`Operation` belongs to."""

PropertyValue = Union[str, int, bool]
"""A property value: ``str`` (paths), ``int`` (an unsigned 32-bit count) or ``bool``."""


class HostProtector(Protocol):
    """What ``protector=`` accepts besides a :class:`Protector`: an object that wraps and unwraps
    the 32-byte secret seed of a store or a ledger with a key the host keeps (a keystore, a
    hardware token, a key derived from the user's password).

    ``wrap(seed)`` returns bytes only ``unwrap`` of the same protector turns back into the seed;
    ``unwrap(wrapped)`` returns the seed, or ``None`` when the bytes were not wrapped by it
    (``ProtectorMismatchError``). An exception raised by either becomes
    ``ProtectorFailedError`` with it as ``__cause__``, and nothing is changed. They are called
    when a store or a service is opened (on the calling thread) and when a restore
    individualizes the device (on the operation's thread).
    """

    def wrap(self, seed: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes) -> Optional[bytes]: ...


@dataclass(frozen=True)
class Rights:
    """What the content owner allows the holder of a license to do."""

    play: bool = True
    """The content may be played."""
    burn: bool = True
    """The content may be burned to a CD."""
    transfer: bool = True
    """The content may be transferred to a portable device."""
    backup_allowed: bool = True
    """The license may be backed up and restored (otherwise a backup reports it with a
    :class:`RestrictedLicense` event and leaves it out)."""
    expires_at: Optional[int] = None
    """Expiry in seconds since the Unix epoch; ``None`` never expires."""
    plays_remaining: Optional[int] = None
    """Plays left; ``None`` is unlimited."""


@dataclass(frozen=True)
class CatalogEntry:
    """What the application knows about a protected file, by key ID."""

    title: Optional[str] = None
    artist: Optional[str] = None
    file_path: Optional[str] = None


@dataclass(frozen=True)
class NewLicense:
    """A license as the application adds it: the only record that carries the content key."""

    key_id: str
    """The key ID, a UUID string (``uuid.UUID`` is accepted too)."""
    content_key: bytes = field(repr=False)
    """The content key (secret): sealed to the device key before it is stored."""
    rights: Rights
    issuer: str
    """Who issued the license (a license server URL or name)."""
    issued_at: int
    """When it was issued, in seconds since the Unix epoch."""


@dataclass(frozen=True)
class License:
    """A license as the store describes it: everything but the content key."""

    key_id: str
    """The key ID: a lowercase hyphenated UUID."""
    rights: Rights
    issuer: str
    issued_at: int
    catalog: Optional[CatalogEntry]
    """The catalog entry of this key ID, if the application keeps one."""

    @property
    def title(self) -> Optional[str]:
        """The catalog title, if any."""
        return self.catalog.title if self.catalog else None


@dataclass(frozen=True)
class Quota:
    """What the restore quota allows for the archive in ``RestorePath`` onto this device."""

    licenses: int
    """Licenses in the archive."""
    max_devices: int
    """Distinct devices a license may live on."""
    restores_remaining: int
    """How many more new devices could still receive every license of the archive."""
    device_already_counted: bool
    """This device already counts for every license: restoring onto it again is free."""

    @property
    def can_restore(self) -> bool:
        """Whether a restore onto this device would be authorized now."""
        return self.device_already_counted or self.restores_remaining > 0


@dataclass(frozen=True)
class Summary:
    """What a finished operation did."""

    licenses: int
    """Licenses written to the archive (backup) or added to the store (restore)."""
    restricted: int
    """Licenses a backup left out because their owner forbids backup."""
    skipped: int
    """Archived licenses a restore left alone because the device already had them."""
    bytes: int
    """Archive bytes written (backup) or read (restore)."""
    duration_ms: int
    """Wall time of the operation, in milliseconds."""


# --- status events ---------------------------------------------------------------------------
#
# The native module builds the events itself, the way the generated ``__init__`` would:
# ``object.__new__(cls)``, then ``object.__setattr__`` of each field in order, then
# ``emitted_ns`` (no ``__init__`` or ``__post_init__`` runs; keep the event classes plain).


class _Event:
    """What every status event carries besides its fields."""

    __slots__ = ()

    emitted_ns: int = 0
    """When the engine emitted the event, in nanoseconds on the clock of
    ``time.monotonic_ns()`` (``CLOCK_MONOTONIC``); 0 for an event made in Python."""


@dataclass(frozen=True)
class Begin(_Event):
    """The operation's work begins (for a restore: after the service has answered)."""

    operation: OperationKind


@dataclass(frozen=True)
class Progress(_Event):
    """``done`` of ``total`` licenses processed (every ``ProgressInterval`` licenses, and at the end)."""

    operation: OperationKind
    done: int
    total: int


@dataclass(frozen=True)
class RestrictedLicense(_Event):
    """A license a backup leaves out because its content owner did not grant the right."""

    key_id: str
    title: Optional[str]
    """The catalog title, when the application has one for this key ID."""


@dataclass(frozen=True)
class Connecting(_Event):
    """A restore is connecting to the License Management Service."""


@dataclass(frozen=True)
class Disconnecting(_Event):
    """The service has answered; the restore disconnects from it."""


@dataclass(frozen=True)
class Refused(_Event):
    """The service refused the restore; ``url`` is a page the application can show."""

    code: ErrorCode
    """Why, as a stable code (``ErrorCode.RESTORE_LIMIT_EXCEEDED``, ...)."""
    message: str
    url: str


@dataclass(frozen=True)
class End(_Event):
    """The operation ended: always the last event, exactly once per operation.

    Exactly one of ``summary`` (it completed) and ``error`` (it failed or was cancelled: the
    exception that ``wait()`` / ``await`` raises) is set.
    """

    operation: OperationKind
    summary: Optional[Summary]
    error: Optional[LicenseBackupError]

    @property
    def ok(self) -> bool:
        """Whether the operation completed."""
        return self.error is None


StatusEvent = Union[Begin, Progress, RestrictedLicense, Connecting, Disconnecting, Refused, End]
"""Any status event."""
