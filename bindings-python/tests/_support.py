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


class HmacProtector:
    """A host protector built on Python's own crypto (``hashlib``, ``hmac``, ``secrets``):
    encrypt-then-MAC with an HMAC-SHA256 keystream, a random nonce, and an HMAC-SHA256 tag.
    ``unwrap`` answers ``None`` for bytes another key wrapped. Every seed it sees is kept in
    ``seen`` so tests can look for it in the files."""

    def __init__(self, key: bytes) -> None:
        import hashlib

        self.enc = hashlib.sha256(b"enc" + key).digest()
        self.mac = hashlib.sha256(b"mac" + key).digest()
        self.seen: list[bytes] = []

    def _stream(self, nonce: bytes, n: int) -> bytes:
        import hashlib
        import hmac

        out = b""
        counter = 0
        while len(out) < n:
            out += hmac.new(self.enc, nonce + counter.to_bytes(4, "big"), hashlib.sha256).digest()
            counter += 1
        return out[:n]

    def wrap(self, seed: bytes) -> bytes:
        import hashlib
        import hmac
        import secrets

        self.seen.append(bytes(seed))
        nonce = secrets.token_bytes(16)
        body = bytes(a ^ b for a, b in zip(seed, self._stream(nonce, len(seed))))
        return nonce + body + hmac.new(self.mac, nonce + body, hashlib.sha256).digest()

    def unwrap(self, wrapped: bytes) -> "bytes | None":
        import hashlib
        import hmac

        nonce, body, tag = wrapped[:16], wrapped[16:-32], wrapped[-32:]
        if not hmac.compare_digest(tag, hmac.new(self.mac, nonce + body, hashlib.sha256).digest()):
            return None
        seed = bytes(a ^ b for a, b in zip(body, self._stream(nonce, len(body))))
        self.seen.append(seed)
        return seed


class KeystoreLocked(Exception):
    """What a failing host protector raises."""


class FailingProtector:
    """A host protector whose keystore is locked: both calls raise."""

    def wrap(self, seed: bytes) -> bytes:
        raise KeystoreLocked("the keystore is locked")

    def unwrap(self, wrapped: bytes) -> bytes:
        raise KeystoreLocked("the keystore is locked")


def scenario_protector(name: "str | None") -> object:
    """The protector an ``open_store`` step names (tests/scenarios/README.md)."""
    if name is None:
        return None
    if name == "failing":
        return FailingProtector()
    assert name.startswith("host:"), name
    return HmacProtector(bytes([int(name[5:])]) * 32)
