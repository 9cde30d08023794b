"""Binary wheels from PyPI under the leak checker: clean work gives a clean
verdict. Their inlined Py_INCREF and Py_DECREF skip sys.gettotalrefcount(),
so a checker that trusted that total called every one of them a leak."""

import sys

import check_leaks
import pytest
from flavors import needs_pydebug, needs_trace_refs

pytestmark = needs_trace_refs


def numpy_work():
    import numpy

    values = numpy.arange(1000, dtype=float)
    (values * 2.0 + 1).sum()
    numpy.linalg.norm(values.reshape(10, 100), axis=1)


def msgpack_work():
    import msgpack

    msgpack.unpackb(msgpack.packb({"a": [1, 2.5, "x" * 20], "b": None}))


def yaml_work():
    import yaml

    yaml.safe_load(yaml.safe_dump({"a": [1, 2, {"b": "c"}]}))


def orjson_work():
    import orjson

    orjson.loads(orjson.dumps({"a": [1, 2.5, "x"], "b": {"c": None}}))


def multidict_work():
    import multidict

    # A second MultiDict comes from multidict's pool (patch 0016).
    for n in range(3):
        headers = multidict.CIMultiDict(Accept="text/html")
        headers.add("accept", str(n))
        headers.getall("ACCEPT")


WORKLOADS = [numpy_work, msgpack_work, yaml_work, orjson_work, multidict_work]


@pytest.mark.parametrize("work", WORKLOADS, ids=lambda work: work.__name__)
def test_clean_work_in_a_binary_wheel_is_clean(work):
    report = check_leaks.check(work)
    assert not report, str(report)
    assert report.refcount_deltas == [0] * report.runs


@needs_pydebug
def test_the_total_refcount_does_drift_with_binary_wheels():
    """The misleading count the checker no longer uses, in the same suite:
    if no workload moved it, the test above would prove nothing."""
    drifts = []
    for work in WORKLOADS:
        work()  # warm
        before = sys.gettotalrefcount()
        for _ in range(3):
            work()
        drifts.append(sys.gettotalrefcount() - before)
    assert any(drifts), drifts


def test_a_mypyc_wheel_runs_and_only_its_type_references_leak():
    """black is compiled by mypyc, whose revived instances aborted the debug
    build on import (patch 0015). What the checker then finds is real:
    mypyc's tp_dealloc never releases an instance's reference to its heap
    class, so each instance freed leaves its class one reference richer.
    That, and nothing else, is reported."""
    import black

    report = check_leaks.check(black.format_str, "x = [1,2]\n", mode=black.Mode())
    assert report.reference_leaks, str(report)
    assert all(leak.example.startswith("<class ") for leak in report.reference_leaks)
    assert not report.leaks and not report.block_leaks and not report.descriptor_leak
