"""Fixtures: a fresh world (service, devices, backup folder) per test."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

import license_backup as lb
from _support import PACKAGE_SOURCE


def pytest_report_header() -> str:
    return f"license_backup {lb.__version__} from {Path(lb.__file__).parent}"


@pytest.fixture(scope="session", autouse=True)
def _tests_the_installed_wheel() -> None:
    """The package under test must be the installed wheel, never the source tree."""
    installed = Path(lb.__file__).resolve().parent
    assert installed != PACKAGE_SOURCE.resolve(), f"testing the source tree at {installed}, not the wheel"
    assert "site-packages" in installed.parts, installed


class World:
    """A temporary folder with a service, a backup folder and devices made on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.backup = root / "backup"
        self.backup.mkdir()
        self.service = lb.EmbeddedService(root / "service.db")
        self.stores: list[lb.LicenseStore] = []

    def device(self, name: str, service: lb.EmbeddedService | lb.RemoteService | None = None) -> lb.BackupRestorer:
        store = lb.LicenseStore(self.root / f"{name}.db")
        self.stores.append(store)
        restorer = lb.BackupRestorer(store, service or self.service)
        restorer.backup_path = self.backup
        restorer.restore_path = self.backup
        return restorer


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    for s in w.stores:
        s.close()


@pytest.fixture
def device(world: World) -> Callable[..., lb.BackupRestorer]:
    return world.device
