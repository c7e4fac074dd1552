"""Conveniences the generated value classes of ``_types`` inherit: idiom over their fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

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

    restores_remaining: int
    device_already_counted: bool

    @property
    def can_restore(self) -> bool:
        """Whether a restore onto this device would be authorized now."""
        return self.device_already_counted or self.restores_remaining > 0


class EndExtras:
    """What :class:`End` adds to its fields."""

    __slots__ = ()

    error: Optional[LicenseBackupError]

    @property
    def ok(self) -> bool:
        """Whether the operation completed."""
        return self.error is None
