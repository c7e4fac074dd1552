"""Run by test_package.py under other CPython versions: python abi3_smoke.py PACKAGE_PARENT.

A backup, an asyncio restore and an error, with the package copied from the installed wheel.
Kept to Python 3.9 syntax.
"""

import sys, tempfile, asyncio
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import license_backup as lb
root = Path(tempfile.mkdtemp())
(root / "b").mkdir()
s = lb.LicenseStore(root / "a.db")
s.add_licenses([lb.NewLicense(f"5a000000-0000-0000-0000-{i:012x}", b"k", lb.Rights(), "i", 0) for i in range(1, 4)])
r = lb.BackupRestorer(s, lb.EmbeddedService(root / "s.db"))
r.backup_path = root / "b"; r.restore_path = root / "b"
events = []
assert r.backup_licenses(on_status=events.append).wait().licenses == 3
t = lb.BackupRestorer(lb.LicenseStore(root / "c.db"), r.service)
t.restore_path = root / "b"
async def main():
    return await t.restore_licenses(on_status=events.append)
assert asyncio.run(main()).licenses == 3
# Events are built natively field by field (object.__new__ + object.__setattr__): the same
# objects as their classes make, on every version's object layout.
assert events[0] == lb.Begin("backup") and all(e.emitted_ns > 0 for e in events), events
assert vars(events[0]) == {"operation": "backup", "emitted_ns": events[0].emitted_ns}, vars(events[0])
assert hash(events[0]) == hash(lb.Begin("backup")) and repr(events[0]) == repr(lb.Begin("backup"))
try:
    r.backup_licenses().wait()
except lb.BackupExistsError as e:
    print(sys.version.split()[0], "ok", len(events), "events", e.name, lb._native.__file__.rsplit("/",1)[1])
