#!/usr/bin/env python3
"""Adds up the test counts of every runner in a `make test` log and prints one closing line.

cargo test ("test result: ok. N passed; M failed"), pytest ("== N passed, M failed in ..."),
node --test ("ℹ pass N" / "ℹ fail N") and XCTest (the "Executed N tests, with M failures" line
after "Test Suite 'All tests'"). Exits 1 when a suite failed or no test ran at all.
"""

import re
import sys


def main(path: str) -> int:
    lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    counts = {"rust": [0, 0], "python": [0, 0], "node": [0, 0], "swift": [0, 0]}
    for i, line in enumerate(lines):
        if m := re.search(r"test result: \w+\. (\d+) passed; (\d+) failed", line):
            counts["rust"][0] += int(m[1])
            counts["rust"][1] += int(m[2])
        elif re.match(r"^=+ .*\d+ (passed|failed).* in [\d.]+s", line):
            for n, kind in re.findall(r"(\d+) (passed|failed)", line):
                counts["python"][kind == "failed"] += int(n)
        elif m := re.match(r"^ℹ (pass|fail) (\d+)$", line):
            counts["node"][m[1] == "fail"] += int(m[2])
        elif line.startswith("Test Suite 'All tests'") and i + 1 < len(lines):
            if m := re.search(r"Executed (\d+) tests?, with (\d+) failures?", lines[i + 1]):
                counts["swift"][0] += int(m[1]) - int(m[2])
                counts["swift"][1] += int(m[2])
    for suite, (passed, failed) in counts.items():
        print(f"  {suite:<7} {passed:>5} passed, {failed} failed")
    passed = sum(c[0] for c in counts.values())
    failed = sum(c[1] for c in counts.values())
    print(f"total: {passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
