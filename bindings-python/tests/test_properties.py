"""Property-based tests (Hypothesis) of the Python boundary: whatever value a caller puts in a
field of a license, an option or a property, the package either accepts it, exactly when the
interface definition (core/interface.json: type, range, limits) says it is valid, or raises
InvalidArgumentError (or the property's own code) naming it, and a rejected call changes
nothing. The oracle below reads the definition; the package must agree with it."""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import uuid
from pathlib import Path
from typing import Any, Dict, Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import license_backup as lb
from _support import INTERFACE, generated_license

SPEC = json.loads(INTERFACE.read_text())
RIGHTS = {f["name"]: f for f in SPEC["records"]["Rights"]}
LICENSE = {f["name"]: f for f in SPEC["records"]["NewLicense"]}
CATALOG = {f["name"]: f for f in SPEC["records"]["CatalogEntry"]}
PROPERTIES = {p["name"]: p for p in SPEC["properties"]}


def valid(value: Any, field: Dict[str, Any]) -> bool:
    """Whether the definition accepts `value` for `field` (the oracle)."""
    kind = field["type"]
    if value is None:
        return kind.endswith("?")
    kind = kind.rstrip("?")
    if kind == "bool":
        return type(value) is bool
    if kind in ("u32", "i64", "u64"):
        return type(value) is int and field["min"] <= value <= field["max"]
    if kind == "string":
        if type(value) is not str or "\0" in value:
            return False
        size = len(value.encode("utf-8", "surrogatepass"))
        return field.get("min_bytes", 0) <= size <= field.get("max_bytes", math.inf)
    if kind == "bytes":
        return type(value) is bytes and field["min_len"] <= len(value) <= field["max_len"]
    raise AssertionError(f"no oracle for {kind}")


# Anything a caller might pass, with the interesting integers and sizes near the limits.
BOUNDARIES = [0, 1, -1, 2**31, 2**32 - 1, 2**32, 2**53 - 1, 2**53, 2**63, -(2**53) + 1, -(2**53), 4096, 4097]
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(BOUNDARIES),
    st.integers(min_value=-3, max_value=3).map(lambda d: 2**32 - 1 + d),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.text(alphabet="ab\0", max_size=5),
    st.integers(min_value=4090, max_value=4100).map(lambda n: "é" * (n // 2) + "a" * (n % 2)),
    st.binary(max_size=20),
    st.integers(min_value=1020, max_value=1030).map(lambda n: b"k" * n),
    st.lists(st.integers(), max_size=3),
)

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Device:
    """A store, a service and a restorer in a temporary folder, for the whole test."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lb-hypothesis-"))
        self.store = lb.LicenseStore(self.dir / "device.db")
        self.restorer = lb.BackupRestorer(self.store, lb.EmbeddedService(self.dir / "service.db"))


def check(call: Any, ok: bool, named: str, device: Device, codes: tuple[str, ...] = ("INVALID_ARGUMENT",)) -> None:
    before = device.store.license_count()
    try:
        call()
    except lb.LicenseBackupError as err:
        assert not ok, f"rejected a valid value: {err!r}"
        assert err.name in codes, repr(err)
        assert named in err.message, f"the message names {named}: {err.message}"
        assert device.store.license_count() == before, "a rejected call changed the store"
        return
    assert ok, "accepted an invalid value"


@SETTINGS
@given(field=st.sampled_from(sorted(RIGHTS) + sorted(set(LICENSE) - {"rights", "key_id"})), value=anything)
def test_any_value_in_a_license_field(field: str, value: Any) -> None:
    device = DEVICE
    base = dataclasses.replace(generated_license(1), key_id=str(uuid.uuid4()))
    if field in RIGHTS:
        license = dataclasses.replace(base, rights=dataclasses.replace(base.rights, **{field: value}))
        spec = RIGHTS[field]
    else:
        license = dataclasses.replace(base, **{field: value})
        spec = LICENSE[field]
    check(lambda: device.store.add_license(license), valid(value, spec), field, device)


@SETTINGS
@given(field=st.sampled_from(sorted(CATALOG)), value=anything)
def test_any_value_in_a_catalog_field(field: str, value: Any) -> None:
    entry = lb.CatalogEntry(**{field: value})
    check(lambda: DEVICE.store.set_catalog_entry(str(uuid.uuid4()), entry), valid(value, CATALOG[field]), field, DEVICE)


@SETTINGS
@given(value=anything)
def test_any_value_for_max_devices(value: Any) -> None:
    spec = next(f for f in SPEC["records"]["ServiceOptions"] if f["name"] == "max_devices")
    path = DEVICE.dir / f"service-{uuid.uuid4()}.db"
    check(lambda: lb.EmbeddedService(path, max_devices=value), valid(value, spec), "max_devices", DEVICE)


@SETTINGS
@given(value=anything)
def test_any_value_for_an_option_flag(value: Any) -> None:
    # None is "the default"; anything but a bool is refused before the operation starts.
    ok = value is None or type(value) is bool
    check(lambda: DEVICE.store.add_licenses([], replace=value), ok, "replace", DEVICE)


@SETTINGS
@given(value=anything)
def test_any_value_for_progress_interval(value: Any) -> None:
    prop = PROPERTIES["ProgressInterval"]
    # A number is checked against the range; any other type is the wrong type.
    number = type(value) in (int, float)
    ok = type(value) is int and prop["min"] <= value <= prop["max"]
    code = "INVALID_ARGUMENT" if number else "WRONG_PROPERTY_TYPE"
    if type(value) is bool:
        code = "WRONG_PROPERTY_TYPE"
    check(lambda: DEVICE.restorer.set_property("ProgressInterval", value), ok, "ProgressInterval", DEVICE, (code,))


DEVICE = Device()


# Paths: any str, bytes or path-like, including names that are not UTF-8.
path_like = st.one_of(
    anything,
    st.binary(max_size=12).map(lambda b: b"/tmp/" + b),
    st.binary(min_size=1, max_size=12).map(lambda b: Path("/tmp") / __import__("os").fsdecode(b)),
)


def valid_path(value: Any) -> Optional[bytes]:
    """The path's bytes, as os.fsencode reads it, when the definition accepts it (not empty, no
    NUL); None when it is refused."""
    import os

    if not isinstance(value, (str, bytes, os.PathLike)):
        return None
    raw = os.fsencode(value)
    return raw if raw and b"\0" not in raw else None


@SETTINGS
@given(name=st.sampled_from(["BackupPath", "RestorePath"]), value=path_like)
def test_any_value_for_a_path_property(name: str, value: Any) -> None:
    import os

    raw = valid_path(value)
    restorer = DEVICE.restorer
    # A path that is empty or holds a NUL is an invalid argument; a value that is no path at all
    # (None, a number, a list) is the wrong type of value for the property. Both name it.
    codes = ("INVALID_ARGUMENT",) if isinstance(value, (str, bytes, os.PathLike)) else ("WRONG_PROPERTY_TYPE",)
    check(lambda: restorer.set_property(name, value), raw is not None, name, DEVICE, codes)
    if raw is not None:
        # Read back as os.fsdecode makes it: it names the same bytes.
        assert os.fsencode(restorer.get_property(name)) == raw  # type: ignore[arg-type]
        assert isinstance(restorer.get_property(name), str)


@SETTINGS
@given(value=anything)
def test_any_value_for_a_record_argument(value: Any) -> None:
    # Nothing but an object with the record's fields is a record: None, str, bytes, numbers and
    # lists (of no such object) are refused, as a TypeError naming the argument.
    for call, named in [
        (lambda: DEVICE.store.add_license(value), "license"),
        (lambda: DEVICE.store.update_rights(str(uuid.uuid4()), value), "rights"),
        (lambda: DEVICE.store.set_catalog_entry(str(uuid.uuid4()), value), "entry"),
    ]:
        try:
            call()
        except TypeError as err:
            assert isinstance(err, lb.InvalidArgumentError) and named in err.message, repr(err)
        else:
            raise AssertionError(f"accepted {value!r} as {named}")
