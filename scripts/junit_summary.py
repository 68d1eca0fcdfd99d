"""Reads a pytest junit report: did the collected tests pass, and which modules could not be collected?

    python scripts/junit_summary.py REPORT.xml

Prints two lines, `tests|STATUS|NOTE` and `collection|STATUS|NOTE`, STATUS
being passed or failed. The tests fail on a failure or error of a collected
test; the collection fails when a module could not be imported (pytest then
ran with --continue-on-collection-errors), each named with its exception, for
example a test module that imports a package this machine lacks.
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def collection_cause(error: ET.Element) -> str:
    """The exception line of a collection error ("E   ImportError: ..."), or its message."""
    lines = [line[1:].strip() for line in (error.text or "").splitlines() if line.startswith("E ")]
    return lines[-1] if lines else error.get("message", "")


def summarise(path: str) -> list:
    """[(what, status, note)] for the tests and for the collection."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as error:
        note = f"no junit report ({error.__class__.__name__})"
        return [("tests", "failed", note), ("collection", "failed", note)]
    suites = [root] if root.tag == "testsuite" else list(root)
    count = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    uncollected = sorted(
        f"{case.get('name')} ({collection_cause(case.find('error'))})"
        for suite in suites for case in suite.iter("testcase")
        if not case.get("classname") and case.find("error") is not None
    )
    errors = count["errors"] - len(uncollected)  # errors of collected tests (fixtures, teardown)
    tests = count["tests"] - len(uncollected)
    passed = tests - count["failures"] - errors - count["skipped"]
    note = f"{passed} passed, {count['failures']} failed, {errors} errors, {count['skipped']} skipped"
    tests_status = "failed" if count["failures"] or errors else "passed"
    if uncollected:
        collection = ("collection", "failed", f"{len(uncollected)} modules not collected: " + "; ".join(uncollected))
    else:
        collection = ("collection", "passed", "every test module imported")
    return [("tests", tests_status, note), collection]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    for what, status, note in summarise(argv[0]):
        print(f"{what}|{status}|{note.replace('|', '/')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
