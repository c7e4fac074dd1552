#!/usr/bin/env python3
"""Back up a device's licenses to a folder, then restore them on a second device, with a live
progress display: the backup waits in a thread, the restore is awaited from asyncio.

    python examples/python/backup_restore.py [FOLDER]

FOLDER (default: a fresh temporary folder) receives the two device stores, the License
Management Service's ledger and the backup folder ("usb-stick"). Runs on every Python the
package supports (3.9+: no ``match`` statement; on 3.10+ the events also work with ``match``).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from license_backup import (
    ARCHIVE_FILE_NAME,
    BackupRestorer,
    Begin,
    CatalogEntry,
    Connecting,
    Disconnecting,
    EmbeddedService,
    End,
    LicenseBackupError,
    LicenseStore,
    NewLicense,
    Progress,
    Refused,
    RestrictedLicense,
    Rights,
    StatusEvent,
)

TITLES = ["Blue in Green", "Clair de lune", "Hallelujah", "Heroes", "Hurt", "Jolene", "Karma Police"]


class ProgressDisplay:
    """An ``on_status`` callback: a progress bar redrawn in place on a terminal, plain lines
    otherwise (a log, a pipe)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.live = sys.stdout.isatty()

    def __call__(self, event: StatusEvent) -> None:
        if isinstance(event, Connecting):
            self.say("connecting to the License Management Service")
        elif isinstance(event, Disconnecting):
            self.say("the service answered")
        elif isinstance(event, Begin):
            self.say(f"{event.operation} started")
        elif isinstance(event, Progress):
            width = 30
            filled = width * event.done // event.total if event.total else width
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {event.done}/{event.total}"
            if self.live:
                print(f"\r  {self.label}: {bar}", end="", flush=True)
            else:
                self.say(bar)
        elif isinstance(event, RestrictedLicense):
            self.say(f'"{event.title or event.key_id}" may not be backed up (its owner forbids it)')
        elif isinstance(event, Refused):
            self.say(f"refused ({event.code.name}): {event.message}; see {event.url}")
        elif isinstance(event, End) and event.summary is not None:
            s = event.summary
            self.say(
                f"{event.operation} done: {s.licenses} licenses, {s.restricted} restricted,"
                f" {s.skipped} skipped, {s.bytes} bytes in {s.duration_ms} ms"
            )
        elif isinstance(event, End):
            self.say(f"{event.operation} failed: {event.error}")

    def say(self, text: str) -> None:
        print(f"\r  {self.label}: {text}" if self.live else f"  {self.label}: {text}", flush=True)


def make_device_a(store: LicenseStore, count: int = 140) -> None:
    licenses = []
    for i in range(1, count + 1):
        key_id = f"{i:08x}-0000-4000-8000-{i:012x}"
        licenses.append(
            NewLicense(
                key_id=key_id,
                content_key=bytes((i * 31 + j) % 256 for j in range(16)),
                rights=Rights(backup_allowed=i % 50 != 0, plays_remaining=i if i % 7 == 0 else None),
                issuer="https://licenses.example.com",
                issued_at=int(time.time()),
            )
        )
    store.add_licenses(licenses)
    for i, lic in enumerate(licenses, start=1):
        title = f"{TITLES[i % len(TITLES)]} (take {i})"
        store.set_catalog_entry(lic.key_id, CatalogEntry(title=title, artist="Various"))


def main(root: Path) -> int:
    usb = root / "usb-stick"
    usb.mkdir(parents=True, exist_ok=True)
    service = EmbeddedService(root / "license-service.db")

    with LicenseStore(root / "device-a.db") as device_a, LicenseStore(root / "device-b.db") as device_b:
        if device_a.license_count() == 0:
            make_device_a(device_a)
        print(f"Device A ({device_a.device_id()}): {device_a.license_count()} licenses")

        backup = BackupRestorer(device_a, service)
        backup.backup_path = usb
        backup.progress_interval = 10
        try:
            summary = backup.backup_licenses(overwrite=True, on_status=ProgressDisplay("backup")).wait()
        except KeyboardInterrupt:
            backup.cancel_license_backup()
            raise
        print(f"Backed up {summary.licenses} licenses to {usb / ARCHIVE_FILE_NAME}")

        restore = BackupRestorer(device_b, service)
        restore.restore_path = usb
        restore.progress_interval = 10
        quota = restore.restore_quota()
        print(
            f"Device B ({device_b.device_id()}): {quota.licenses} licenses in the backup; "
            f"{quota.restores_remaining} more devices may receive them (of {quota.max_devices})"
        )

        async def restore_async() -> int:
            # Started from a coroutine: on_status runs on this event loop, await resolves after END.
            restored = await restore.restore_licenses(on_status=ProgressDisplay("restore"))
            return restored.licenses

        try:
            restored = asyncio.run(restore_async())
        except LicenseBackupError as e:
            print(f"Restore failed: {e}")
            return 1
        sample = device_b.list_licenses()[0]
        assert device_b.content_key(sample.key_id) == device_a.content_key(sample.key_id)
        print(f"Restored {restored} licenses on device B; e.g. {sample.title!r} plays there with the same key")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(main(Path(sys.argv[1])))
    with tempfile.TemporaryDirectory(prefix="license-backup-example-") as tmp:
        sys.exit(main(Path(tmp)))
