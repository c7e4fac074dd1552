"""Parity with core/interface.json: every error code, event (and field), property, record
field and operation has its Python counterpart, with the idiomatic name."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
from typing import Any, Dict, List

import pytest

import license_backup as lb
from license_backup import _types
from _support import INTERFACE

SPEC = json.loads(INTERFACE.read_text())


def camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def snake(camel_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel_name).lower()


@pytest.mark.parametrize("err", SPEC["errors"], ids=[e["name"] for e in SPEC["errors"]])
def test_error_codes(err: Dict[str, Any]) -> None:
    code = lb.ErrorCode[err["name"]]
    assert code.value == err["number"]
    cls = getattr(lb, "OperationCancelledError" if err["name"] == "CANCELLED" else err["variant"] + "Error")
    assert cls.code is code and cls.__name__ in lb.__all__


def test_no_extra_error_codes() -> None:
    assert [c.name for c in lb.ErrorCode] == [e["name"] for e in SPEC["errors"]]
    subclasses = {c.__name__ for c in lb.LicenseBackupError.__subclasses__()}
    # CANCELLED's class is OperationCancelledError: CancelledError is asyncio's name.
    named = {"OperationCancelledError" if e["name"] == "CANCELLED" else e["variant"] + "Error" for e in SPEC["errors"]}
    assert subclasses == named


def signature(member: Any) -> inspect.Signature:
    """``inspect.signature(member)``; on CPython 3.9 a native class has none (pyo3 gives an abi3
    class its text signature from 3.10 on): that check then runs on 3.10+ only (and stubtest
    checks the stub's constructors on every version)."""
    try:
        return inspect.signature(member)
    except ValueError:
        if sys.version_info < (3, 10) and isinstance(member, type):
            pytest.skip("CPython 3.9 exposes no signature of a native class")
        raise


PY_TYPES = {
    "operation": str,
    "u64": int,
    "u32": int,
    "i64": int,
    "bool": bool,
    "string": str,
    "key_id": str,
    "error_code": lb.ErrorCode,
    "bytes": bytes,
}

# A value of each surface type, to build an example of every event from the interface alone.
SAMPLES: Dict[str, Any] = {
    "operation": "backup",
    "u64": 1,
    "key_id": "01010101-0101-0101-0101-010101010101",
    "string": "text",
    "string?": "text",
    "error_code": lb.ErrorCode.RESTORE_LIMIT_EXCEEDED,
}


def example(event: Dict[str, Any]) -> Any:
    """An event of this kind made from sample values of its surface fields (the outcome is a
    summary and no error)."""
    values: List[Any] = []
    for field in event["surface"]:
        values += [lb.Summary(1, 2, 3, 4, 5), None] if field["type"] == "outcome" else [SAMPLES[field["type"]]]
    return getattr(lb, camel(event["name"]))(*values)


@pytest.mark.parametrize("event", SPEC["events"], ids=[e["name"] for e in SPEC["events"]])
def test_events(event: Dict[str, Any]) -> None:
    """Each event is a frozen dataclass whose fields are its surface fields in order (the
    outcome as summary and error), each of the surface type."""
    cls = getattr(lb, camel(event["name"]))
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    expected: List[str] = []
    for field in event["surface"]:
        expected += ["summary", "error"] if field["type"] == "outcome" else [field["name"]]
    assert [f.name for f in dataclasses.fields(cls)] == expected
    if sys.version_info >= (3, 10):  # dataclasses add __match_args__ (for `match`) from 3.10 on
        assert cls.__match_args__ == tuple(expected)
    instance = example(event)
    for field in event["surface"]:
        if field["type"] == "outcome":
            assert isinstance(instance.summary, lb.Summary) and instance.error is None
            failed = lb.End("backup", None, lb.OperationCancelledError("x"))
            assert failed.error is not None and isinstance(failed.error.code, lb.ErrorCode)
            continue
        value = getattr(instance, field["name"])
        assert isinstance(value, PY_TYPES[field["type"].rstrip("?")]), (event["name"], field["name"], value)
    assert type(instance) in lb.StatusEvent.__args__  # type: ignore[attr-defined]


@pytest.mark.parametrize("meta", SPEC["event_metadata"], ids=[m["name"] for m in SPEC["event_metadata"]])
def test_event_metadata(meta: Dict[str, Any]) -> None:
    """Every event class carries each event_metadata entry as an attribute of the same name
    that is not a field (no part of construction, equality or matching); the values the
    engine fills in are checked in test_api (test_events_carry_their_emission_time)."""
    for event in SPEC["events"]:
        cls = getattr(lb, camel(event["name"]))
        assert meta["name"] not in {f.name for f in dataclasses.fields(cls)}
        assert meta["name"] not in getattr(cls, "__match_args__", ())
        value = getattr(example(event), meta["name"])
        assert isinstance(value, PY_TYPES[meta["type"]]) and value == 0, (event["name"], value)
        assert inspect.getattr_static(cls, meta["name"]) == 0
    # ... and no other metadata: the event classes' common base declares exactly these.
    assert set(_types._Event.__annotations__) == {m["name"] for m in SPEC["event_metadata"]}


def test_no_extra_events() -> None:
    assert {c.__name__ for c in lb.StatusEvent.__args__} == {camel(e["name"]) for e in SPEC["events"]}  # type: ignore[attr-defined]


RECORD_CLASSES = {
    "CatalogEntry": lb.CatalogEntry,
    "LedgerAudit": lb.LedgerAudit,
    "License": lb.License,
    "NewLicense": lb.NewLicense,
    "Quota": lb.Quota,
    "Rights": lb.Rights,
    "Summary": lb.Summary,
}


# Option records are keyword arguments of the operations that take them.
OPTIONS_OF = {
    "BackupFlags": [lb.BackupRestorer.backup_licenses],
    "RestoreFlags": [lb.BackupRestorer.restore_licenses],
    "AddOptions": [lb.LicenseStore.add_license, lb.LicenseStore.add_licenses],
    "ServiceOptions": [lb.EmbeddedService],
    "StoreOptions": [lb.LicenseStore],
    "RemoteServiceOptions": [lb.RemoteService],
    "QuotaOptions": [lb.BackupRestorer.restore_quota],
}


@pytest.mark.parametrize("name", sorted(SPEC["records"]))
def test_records(name: str) -> None:
    fields: List[str] = [f["name"] for f in SPEC["records"][name]]
    if name in OPTIONS_OF:
        for member in OPTIONS_OF[name]:
            params = signature(member).parameters
            for f in SPEC["records"][name]:
                # The native module's default is None: "the definition's default".
                assert f["name"] in params and params[f["name"]].default in (None, f["default"]), (name, f["name"])
        return
    if name == "PropertyEntry":
        return  # property_by_index returns a (name, value) tuple
    cls = RECORD_CLASSES[name]
    assert [f.name for f in dataclasses.fields(cls)] == fields
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]


@pytest.mark.parametrize("prop", SPEC["properties"], ids=[p["name"] for p in SPEC["properties"]])
def test_properties(prop: Dict[str, Any], tmp_path: Any) -> None:
    store = lb.LicenseStore(tmp_path / "a.db")
    r = lb.BackupRestorer(store, lb.EmbeddedService(tmp_path / "s.db"))
    value = {"string": str(tmp_path), "u32": 7, "bool": True}[prop["type"]]
    r.set_property(prop["name"], value)
    attr = snake(prop["name"])
    assert getattr(r, attr) == value == r.properties[prop["name"]]
    assert isinstance(getattr(type(r), attr), property) and getattr(type(r), attr).__doc__
    setattr(r, attr, None)
    assert r.get_property(prop["name"]) is None
    store.close()


# How the interface's objects and operations appear in Python.
OBJECTS = {
    "LicenseStore": lb.LicenseStore,
    "EmbeddedService": lb.EmbeddedService,
    "RemoteService": lb.RemoteService,
    "BackupRestorer": lb.BackupRestorer,
    "Operation": lb.Operation,
    "Protector": lb.Protector,
}
# The protector's label is `store.protector.label`.
RENAMED = {("Operation", "is_finished"): "done", ("LicenseStore", "protector_label"): "protector"}
# A host protector is one object with the wrap and unwrap methods (`Protector.host(obj)`).
PARAM_RENAMES = {
    "callback": "on_status",
    "flags": None,
    "license": "license",
    "licenses": "licenses",
    # Protector.host(obj): the host object with wrap and unwrap.
    "protector": "obj",
}


@pytest.mark.parametrize(
    "op", SPEC["operations"], ids=[f"{o['object']}.{o['name']}" for o in SPEC["operations"]]
)
def test_operations(op: Dict[str, Any]) -> None:
    cls = OBJECTS[op["object"]]
    if op["name"] in ("open", "create"):
        member: Any = cls
    else:
        name = RENAMED.get((op["object"], op["name"]), op["name"])
        member = getattr(cls, name)
        if isinstance(member, property) or inspect.isgetsetdescriptor(member):
            return  # a read-only attribute (Operation.done, RemoteService.url)
    assert callable(member)
    params = signature(member).parameters
    for p in op["params"]:
        py_name = PARAM_RENAMES.get(p["name"], p["name"])
        if py_name is None:  # flags become keyword arguments (checked with the records)
            continue
        assert py_name in params, f"{op['object']}.{op['name']}: no parameter {py_name}"
