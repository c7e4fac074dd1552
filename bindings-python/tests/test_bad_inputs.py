"""The shared bad-input table (tests/bad-inputs/: generated from the interface definition, plus
hand-picked rows), run through the Python package: every row's value, put at its place in an
otherwise valid call, is rejected with the row's code before anything changes (or accepted,
for the boundary rows), and the message names the argument."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

import license_backup as lb
from _support import REPO

TABLE_DIR = REPO / "tests" / "bad-inputs"
GENERATED = json.loads((TABLE_DIR / "generated.json").read_text())
HAND_PICKED = json.loads((TABLE_DIR / "hand-picked.json").read_text())
CALLS: Dict[str, Any] = {**GENERATED["calls"], **HAND_PICKED.get("calls", {})}
ROWS: List[Dict[str, Any]] = GENERATED["rows"] + HAND_PICKED["rows"]
INTERFACE = json.loads((REPO / "core" / "interface.json").read_text())
RECORDS = INTERFACE["records"]

ABSENT = object()


class Skip(Exception):
    """The row's value has no form in Python."""


def decode(value: Any, root: Path) -> Any:
    """A table value as a Python value (README: values)."""
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "$float":
            return float(arg)  # "NaN", "Infinity", "-Infinity"
        if key == "$int":
            return int(arg)
        if key == "$bigint":
            raise Skip("a BigInt is JavaScript's")
        if key == "$bytes":
            return b"\x07" * arg
        if key == "$text":
            return "a" * arg
        if key == "$path":
            return str(root / arg)
        if key == "$absent":
            return ABSENT
    if isinstance(value, list):
        return [decode(v, root) for v in value]
    return value


def build(value: Any, record: Optional[str], root: Path) -> Any:
    """A record given as a JSON object, as an object with those attributes (the native module
    reads records attribute by attribute, like any duck-typed object); other values decoded."""
    if isinstance(value, dict) and record is not None and not any(k.startswith("$") for k in value):
        fields = {f["name"]: f for f in RECORDS[record]}
        # The fields left out take their defaults, as the record's dataclass would give them.
        attrs = {f["name"]: f["default"] for f in RECORDS[record] if "default" in f}
        for key, v in value.items():
            inner = fields[key]["type"].rstrip("?").rstrip("[]") if key in fields else None
            decoded = build(v, inner if inner in RECORDS else None, root)
            if decoded is ABSENT:
                attrs.pop(key, None)
            else:
                attrs[key] = decoded
        return types.SimpleNamespace(**attrs)
    if isinstance(value, list) and record is not None:
        return [build(v, record, root) for v in value]
    return decode(value, root)


def put(args: Dict[str, Any], row: Dict[str, Any]) -> None:
    """Sets the row's value at its target and path in the JSON arguments."""
    if not row["path"]:
        args[row["target"]] = row["value"]
        return
    place = args.setdefault(row["target"], {})
    for key in row["path"][:-1]:
        place = place[0] if isinstance(place, list) else place
        place = place[key]
    place = place[0] if isinstance(place, list) else place
    place[row["path"][-1]] = row["value"]


def param_record(call: str, name: str) -> Optional[str]:
    obj, op = call.split(".")
    for o in INTERFACE["operations"]:
        if o["object"] == obj and o["name"] == op:
            for p in o["params"]:
                if p["name"] == name:
                    t = p["type"].rstrip("?").removesuffix("[]")
                    return t if t in RECORDS else None
    return None


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "backup").mkdir()
        self.store = lb.LicenseStore(root / "device.db")
        self.service = lb.EmbeddedService(root / "service.db")
        self.restorer = lb.BackupRestorer(self.store, self.service)
        self.restorer.backup_path = root / "backup"
        self.restorer.restore_path = root / "backup"

    def own(self, key_id: Any) -> None:
        """Adds a license with this key ID (when it is one), so a call about it can succeed."""
        try:
            self.store.add_license(lb.NewLicense(key_id, b"k" * 16, lb.Rights(), "https://issuer.example", 1))
        except (lb.LicenseBackupError, TypeError):
            pass

    def close(self) -> None:
        self.store.close()


def operation(start: Callable[[], lb.Operation], timeout: Any = 30) -> None:
    """Starts an operation and waits for it (with `timeout`); its outcome is not the row's
    concern, only whether the call accepts its arguments."""
    op = start()
    try:
        op.wait(timeout)
    except (lb.LicenseBackupError, TimeoutError) as err:
        if isinstance(err, lb.InvalidArgumentError):
            raise
    finally:
        op.cancel()
        try:
            op.wait(30)
        except lb.LicenseBackupError:
            pass


Form = Callable[[World, Dict[str, Any], Dict[str, Any]], object]


def quota(w: World, options: Dict[str, Any]) -> None:
    """restore_quota; its outcome in a folder with no archive (ARCHIVE_MISSING) does not count."""
    try:
        w.restorer.restore_quota(**options)
    except lb.ArchiveMissingError:
        pass


# The Python form of each call of the table.
FORMS: Dict[str, Form] = {
    "LicenseStore.open": lambda w, a, o: lb.LicenseStore(a["path"], **o).close(),
    "LicenseStore.add_license": lambda w, a, o: w.store.add_license(a["license"], **o),
    "LicenseStore.add_licenses": lambda w, a, o: w.store.add_licenses(a["licenses"], **o),
    "LicenseStore.get_license": lambda w, a, o: w.store.get_license(a["key_id"]),
    "LicenseStore.remove_license": lambda w, a, o: w.store.remove_license(a["key_id"]),
    "LicenseStore.content_key": lambda w, a, o: w.store.content_key(a["key_id"]),
    "LicenseStore.update_rights": lambda w, a, o: w.store.update_rights(a["key_id"], a["rights"]),
    "LicenseStore.use_play": lambda w, a, o: w.store.use_play(a["key_id"]),
    "LicenseStore.set_catalog_entry": lambda w, a, o: w.store.set_catalog_entry(a["key_id"], a["entry"]),
    "LicenseStore.catalog_entry": lambda w, a, o: w.store.catalog_entry(a["key_id"]),
    "LicenseStore.remove_catalog_entry": lambda w, a, o: w.store.remove_catalog_entry(a["key_id"]),
    "EmbeddedService.open": lambda w, a, o: lb.EmbeddedService(a["path"], **o),
    "RemoteService.open": lambda w, a, o: lb.RemoteService(a["url"], **o),
    "EmbeddedService.set_online": lambda w, a, o: w.service.set_online(a["online"]),
    "EmbeddedService.audit": lambda w, a, o: w.service.audit(),
    "BackupRestorer.set_property": lambda w, a, o: w.restorer.set_property(a["name"], a["value"]),
    "BackupRestorer.get_property": lambda w, a, o: w.restorer.get_property(a["name"]),
    "BackupRestorer.property_by_index": lambda w, a, o: w.restorer.property_by_index(a["index"]),
    "BackupRestorer.remove_property": lambda w, a, o: w.restorer.remove_property(a["name"]),
    "BackupRestorer.backup_licenses": lambda w, a, o: operation(lambda: w.restorer.backup_licenses(**o)),
    "BackupRestorer.restore_licenses": lambda w, a, o: operation(lambda: w.restorer.restore_licenses(**o)),
    "BackupRestorer.restore_quota": lambda w, a, o: quota(w, o),
    "Operation.wait": lambda w, a, o: operation(lambda: w.restorer.backup_licenses(), a["timeout"]),
}

# The objects of the world a method's form calls.
INSTANCES = {"LicenseStore": "store", "EmbeddedService": "service", "BackupRestorer": "restorer"}


def form_of(call: str) -> Optional[Form]:
    """The call's form: FORMS', or for a method that returns when done (what has generated entry
    points) the method of the world's object with its parameters in order and its options."""
    if call in FORMS:
        return FORMS[call]
    obj, name = call.split(".")
    op = next((o for o in INTERFACE["operations"] if o["object"] == obj and o["name"] == name), None)
    if op is None or op["call"] != "method" or op["starts"] or obj not in INSTANCES:
        return None
    params = [p["name"] for p in op["params"]]
    return lambda w, a, o: getattr(getattr(w, INSTANCES[obj]), name)(*[a[p] for p in params], **o)


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_bad_input(row: Dict[str, Any], tmp_path: Path) -> None:
    spec = CALLS[row["call"]]
    args = json.loads(json.dumps(spec["args"]))
    args.update(row.get("args", {}))
    options: Dict[str, Any] = {}
    is_option = row["target"] == "options"
    if is_option:
        options = {row["path"][0]: row["value"]}
    else:
        put(args, row)
    world = World(tmp_path)
    if row["call"] in ("LicenseStore.update_rights", "LicenseStore.use_play"):
        world.own(args.get("key_id"))
    try:
        try:
            py_args = {k: build(v, param_record(row["call"], k), tmp_path) for k, v in args.items()}
            py_options = {k: decode(v, tmp_path) for k, v in options.items()}
        except Skip as why:
            pytest.skip(str(why))
        if row["note"] == "an unknown field" and not is_option:
            pytest.skip("records are read by attribute: an extra attribute is not part of the record")
        form = form_of(row["call"])
        assert form is not None, row["call"]

        def fn() -> object:
            return form(world, py_args, py_options)

        expect = row["expect"]
        if is_option and row["note"] == "an unknown option (a typo)":
            # Python itself refuses an unknown keyword argument, before the package runs.
            with pytest.raises(TypeError, match=row["path"][0]):
                fn()
            return
        if expect is None:
            fn()
            return
        count = world.store.license_count()
        with pytest.raises(lb.LicenseBackupError) as info:
            fn()
        assert info.value.name == expect, f"{row['id']}: {info.value!r}"
        if expect == "INVALID_ARGUMENT":
            # A property value's message names the property.
            named = row["path"][-1] if row["path"] else row.get("args", {}).get("name", row["target"])
            assert named in info.value.message, f"the message names {named}: {info.value.message}"
        assert world.store.license_count() == count, "nothing changed"
    finally:
        world.close()


def test_the_table_covers_every_call_and_kind_of_value() -> None:
    """Every call of the table has a Python form (a new operation that is not a plain method
    needs one), and the table holds every kind of bad value the issue lists."""
    assert all(form_of(call) for call in CALLS), [call for call in CALLS if not form_of(call)]
    notes = {r["note"] for r in ROWS}
    for needed in ["negative", "a fraction", "NaN", "infinity", "2^32", "2^63", "a BigInt", "an unknown option (a typo)"]:
        assert needed in notes, needed
    assert len(ROWS) > 200, len(ROWS)


# The entry points outside the table (objects, callables, the facade's own arguments): a value
# of the wrong type is an InvalidArgumentError (a TypeError and a LicenseBackupError with a
# stable code) naming the argument, never a bare TypeError or an AttributeError.
def _entry_points(tmp_path: Path) -> Dict[str, Callable[[Any], object]]:
    store = lb.LicenseStore(tmp_path / "device.db")
    service = lb.EmbeddedService(tmp_path / "service.db")
    restorer = lb.BackupRestorer(store, service)
    restorer.backup_path = tmp_path
    done = restorer.backup_licenses()
    done.wait(30)
    return {
        "store": lambda v: lb.BackupRestorer(v, service),
        "service": lambda v: lb.BackupRestorer(store, v),
        "on_status": lambda v: restorer.backup_licenses(overwrite=True, on_status=v),
        "fn": lambda v: done.add_done_callback(v),
        "protector": lambda v: lb.LicenseStore(tmp_path / "other.db", protector=v),
        "service ": lambda v: lb.Protector.keyring(v),
        "protector ": lambda v: lb.Protector.host(v),
        "licenses": lambda v: store.add_licenses(v),
        "license": lambda v: store.add_license(v),
        "rights": lambda v: store.update_rights("5a000000-0000-0000-0000-000000000001", v),
        "entry": lambda v: store.set_catalog_entry("5a000000-0000-0000-0000-000000000001", v),
    }


WRONG_TYPES = [42, 1.5, True, b"raw", object()]


def test_every_entry_point_refuses_wrong_types_by_name(tmp_path: Path) -> None:
    points = _entry_points(tmp_path)
    for name, call in points.items():
        values = WRONG_TYPES + ([None, "ab"] if name.strip() not in ("on_status", "protector", "service ") else [])
        if name == "service ":
            values = [42, 1.5, True, b"raw"]  # Protector.keyring(service): a str or None
        for value in values:
            with pytest.raises(TypeError) as info:
                call(value)
            err = info.value
            assert isinstance(err, lb.InvalidArgumentError) and err.code == lb.ErrorCode.INVALID_ARGUMENT, (name, value, err)
            assert name.strip() in err.message, (name, value, err.message)
