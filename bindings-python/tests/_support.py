"""Helpers shared by the test modules (not part of the package)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, List, Optional

import license_backup as lb

REPO = Path(os.environ.get("LICENSE_BACKUP_REPO") or Path(__file__).resolve().parents[2])
INTERFACE = REPO / "core" / "interface.json"
SCENARIOS = REPO / "tests" / "scenarios"
EXAMPLES = REPO / "examples" / "python"
PACKAGE_SOURCE = REPO / "bindings-python" / "python" / "license_backup"


def key_id(i: int, prefix: str = "5a") -> str:
    """The key ID of generated license ``i`` (tests/scenarios/README.md)."""
    return f"{prefix}000000-0000-0000-0000-{i:012x}"


def generated_license(i: int, prefix: str = "5a", restricted: bool = False, counted: bool = False) -> lb.NewLicense:
    """Generated license ``i``, exactly as tests/scenarios/README.md describes it."""
    return lb.NewLicense(
        key_id=key_id(i, prefix),
        content_key=f"content-key-{prefix}-{i}".encode(),
        rights=lb.Rights(backup_allowed=not restricted, plays_remaining=i if counted else None),
        issuer="https://issuer.example",
        issued_at=1_700_000_000 + i,
    )


def populate(
    store: lb.LicenseStore,
    count: int,
    prefix: str = "5a",
    restricted: Iterable[int] = (),
    counted: Iterable[int] = (),
    untitled: Iterable[int] = (),
) -> None:
    """Adds generated licenses 1..count in one batch, and their catalog titles."""
    restricted, counted, untitled = set(restricted), set(counted), set(untitled)
    store.add_licenses(
        [generated_license(i, prefix, i in restricted, i in counted) for i in range(1, count + 1)]
    )
    for i in range(1, count + 1):
        if i not in untitled:
            store.set_catalog_entry(key_id(i, prefix), lb.CatalogEntry(title=f"Track {i}"))


class Recorder:
    """An ``on_status`` callable that records every event (and the thread it ran on)."""

    def __init__(self) -> None:
        self.events: List[lb.StatusEvent] = []
        self.threads: List[int] = []

    def __call__(self, event: lb.StatusEvent) -> None:
        import threading

        self.events.append(event)
        self.threads.append(threading.get_ident())

    def kinds(self) -> List[str]:
        return [type(e).__name__ for e in self.events]

    @property
    def end(self) -> Optional[lb.End]:
        last = self.events[-1] if self.events else None
        return last if isinstance(last, lb.End) else None
