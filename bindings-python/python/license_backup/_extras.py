"""Conveniences the generated value classes of ``_types`` inherit (idiom over their fields), and
the protocol of a host protector."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Protocol

if TYPE_CHECKING:
    from ._errors import LicenseBackupError
    from ._types import CatalogEntry


class LicenseExtras:
    """What :class:`License` adds to its fields."""

    __slots__ = ()

    catalog: Optional[CatalogEntry]

    @property
    def title(self) -> Optional[str]:
        """The catalog title, if any."""
        return self.catalog.title if self.catalog else None


class QuotaExtras:
    """What :class:`Quota` adds to its fields."""

    __slots__ = ()

    allowed: bool

    @property
    def can_restore(self) -> bool:
        """Whether a restore onto this device would be authorized now (``allowed``)."""
        return self.allowed


class EndExtras:
    """What :class:`End` adds to its fields."""

    __slots__ = ()

    error: Optional[LicenseBackupError]

    @property
    def ok(self) -> bool:
        """Whether the operation completed."""
        return self.error is None


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
