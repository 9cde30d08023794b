"""The Python API of check_leaks' freelist control."""

import gc

import check_leaks
import pytest
from freelist_checks import assert_consistent


@pytest.fixture(autouse=True)
def restore_freelists():
    with check_leaks.precise_tracebacks(False):
        yield


def test_precise_tracebacks_returns_the_previous_state():
    assert check_leaks.precise_tracebacks(True) == False
    previous = check_leaks.precise_tracebacks(True)
    assert previous == True and bool(previous) and repr(previous) == "True"
    assert not any(info.enabled for info in check_leaks.freelists().values())


def test_precise_tracebacks_block_restores_the_exact_previous_mask():
    check_leaks.set_freelist("dict", False)
    with pytest.raises(KeyError), check_leaks.precise_tracebacks():
        assert not check_leaks.freelists()["float"].enabled
        raise KeyError
    enabled = {kind: info.enabled for kind, info in check_leaks.freelists().items()}
    assert enabled == {kind: kind != "dict" for kind in check_leaks.KINDS}


def test_freelists_reports_every_kind():
    infos = check_leaks.freelists()
    assert list(infos) == list(check_leaks.KINDS)
    for kind, info in infos.items():
        assert info.kind == kind and info.enabled
        # Each deque keeps its own spare blocks: no single capacity.
        assert info.capacity == -1 or 0 <= info.length <= info.capacity


def test_each_list_holds_what_its_counters_leave():
    for info in check_leaks.freelists().values():
        assert_consistent(info)


def test_counters_follow_a_batch_through_the_list_freelist():
    def counts():
        info = check_leaks.freelists()["list"]
        return info.pushes, info.hits, info.drains, info.length

    gc.collect()
    pushes, hits, drains, _ = counts()
    batch = [[] for _ in range(40)]
    del batch
    parked_pushes, _, _, parked = counts()
    assert parked_pushes - pushes >= 40 and parked >= 40
    batch = [[] for _ in range(40)]
    assert counts()[1] - hits >= 40
    del batch
    parked = counts()[3]
    gc.collect()
    assert counts()[2] - drains >= parked and counts()[3] == 0


@pytest.mark.parametrize("precise", [False, True])
def test_reuse_kinds_count_each_reuse_while_on(precise):
    def hits():
        return check_leaks.freelists()["result_tuple"].hits

    with check_leaks.precise_tracebacks(precise):
        before = hits()
        for _a, _b in zip(range(100), range(100)):  # drops each tuple at once
            pass
        reuses = hits() - before
    if precise:
        assert reuses == 0
    else:
        assert reuses >= 100


def test_set_freelist_returns_the_previous_state():
    assert check_leaks.set_freelist("float", False) is True
    assert check_leaks.set_freelist("float", False) is False
    assert check_leaks.set_freelist("all", True) is False
    assert check_leaks.set_freelist("all", True) is True


def test_unknown_kind_is_a_value_error_listing_the_kinds():
    with pytest.raises(
        ValueError,
        match=r"unknown freelist kind 'floats'; expected one of: all, float, tuple",
    ):
        check_leaks.set_freelist("floats", False)
    assert all(info.enabled for info in check_leaks.freelists().values())
