"""RemoteService against a real license-backup-service process on 127.0.0.1: options, trust,
tokens, pinned service keys, the quota query, and the network error codes as exception
classes."""

from __future__ import annotations

from pathlib import Path

import pytest

import license_backup as lb
from _support import TestServer, populate


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> TestServer:
    s = TestServer(tmp_path_factory.mktemp("server") / "service", max_devices=2)
    yield s  # type: ignore[misc]
    s.stop()


def device(root: Path, name: str, service: object) -> lb.BackupRestorer:
    store = lb.LicenseStore(root / f"{name}.db")
    restorer = lb.BackupRestorer(store, service)  # type: ignore[arg-type]
    (root / "backup").mkdir(exist_ok=True)
    restorer.backup_path = root / "backup"
    restorer.restore_path = root / "backup"
    return restorer


def test_backup_quota_and_restore_through_the_server(server: TestServer, tmp_path: Path) -> None:
    service = server.client(timeout=10, retries=1)
    assert service.url == server.url and "RemoteService" in repr(service)
    a = device(tmp_path, "a", service)
    populate(a.store, 25)
    assert a.backup_licenses().wait().licenses == 25
    b = device(tmp_path, "b", service)
    assert b.service is service
    q = b.restore_quota()
    assert (q.licenses, q.max_devices, q.restores_remaining, q.device_already_counted) == (25, 2, 1, False)
    events: list[lb.StatusEvent] = []
    assert b.restore_licenses(on_status=events.append).wait().licenses == 25
    assert [type(e).__name__ for e in events[:2]] == ["Connecting", "Disconnecting"]
    c = device(tmp_path, "c", service)
    with pytest.raises(lb.RestoreLimitExceededError):
        c.restore_licenses().wait()


def test_network_errors_are_their_own_classes(server: TestServer, tmp_path: Path) -> None:
    a = device(tmp_path, "a", server.client(token="not-the-token"))
    populate(a.store, 3)
    with pytest.raises(lb.AuthenticationFailedError) as e:
        a.backup_licenses().wait()
    assert e.value.code == 410 and e.value.name == "AUTHENTICATION_FAILED"
    untrusting = device(tmp_path, "b", lb.RemoteService(server.url, token=server.token))
    populate(untrusting.store, 3)
    with pytest.raises(lb.ServiceNotTrustedError):
        untrusting.backup_licenses().wait()
    pinned = device(tmp_path, "c", server.client(ca_file=None, cert_pins=[server.cert_sha256]))
    populate(pinned.store, 3)
    assert pinned.backup_licenses(overwrite=True).wait().licenses == 3
    wrong_key = device(tmp_path, "d", server.client(service_keys=["00" * 16]))
    populate(wrong_key.store, 3)
    with pytest.raises(lb.ServiceKeyNotPinnedError):
        wrong_key.backup_licenses(overwrite=True).wait()
    right_key = device(tmp_path, "e", server.client(service_keys=[server.key_fingerprint]))
    populate(right_key.store, 3)
    assert right_key.backup_licenses(overwrite=True).wait().licenses == 3


def test_an_unreachable_service(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = device(tmp_path, "a", lb.RemoteService(f"http://127.0.0.1:{port}", timeout=1, retries=0))
    populate(r.store, 2)
    with pytest.raises(lb.ServiceUnavailableError):
        r.backup_licenses().wait()
    assert not (tmp_path / "backup" / lb.ARCHIVE_FILE_NAME).exists()


@pytest.mark.parametrize(
    "url, options",
    [
        ("http://licenses.example.com", {}),
        ("ftp://x", {}),
        ("https://x.example", {"token": "a b"}),
        ("https://x.example", {"token": "a\r\nX-Injected: 1"}),
        ("https://x.example", {"cert_pins": ["abcd"]}),
        ("https://x.example", {"service_keys": ["xyz"]}),
        ("https://x.example", {"timeout": 0}),
        ("https://x.example", {"timeout": float("nan")}),
        ("https://x.example", {"ca_file": "/nonexistent.pem"}),
    ],
)
def test_bad_options_are_refused_at_once(url: str, options: dict[str, object]) -> None:
    with pytest.raises(lb.InvalidArgumentError):
        lb.RemoteService(url, **options)  # type: ignore[arg-type]


def test_a_restorer_takes_only_services(tmp_path: Path) -> None:
    with lb.LicenseStore(tmp_path / "a.db") as store:
        with pytest.raises(TypeError, match="EmbeddedService or a RemoteService"):
            lb.BackupRestorer(store, "https://licenses.example.com")  # type: ignore[arg-type]
