"""Per-test outcomes from regrtest's `--junit-xml` file, for
`cargo xtask cpython-suite` to compare between interpreters.

Usage: outcomes.py JUNIT_XML TEST_MODULE...

Prints one `<outcome> TAB <test id>` line per test case, outcome being passed,
failed, error or skipped, and `no-results TAB <module>` for a module that left no
test cases (its worker crashed or timed out).
"""

import os
import sys
import xml.etree.ElementTree as ET


def outcome(case):
    tags = {child.tag for child in case}
    for tag, name in [
        ("error", "error"),
        ("failure", "failed"),
        ("skipped", "skipped"),
    ]:
        if tag in tags:
            return name
    return "passed"


def main(junit, modules):
    seen = set()
    previous = "the first test"
    # regrtest writes no file when no module reported back.
    cases = ET.parse(junit).iter("testcase") if os.path.exists(junit) else []
    for case in cases:
        name = case.get("name")
        if name is None:
            # regrtest records no result for a test whose subtests failed.
            print(f"failed\t<a test with failing subtests, after {previous}>")
            continue
        previous = name
        seen.update(m for m in modules if name.startswith(f"test.{m}."))
        print(f"{outcome(case)}\t{name}")
    for module in modules:
        if module not in seen:
            print(f"no-results\t{module}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
