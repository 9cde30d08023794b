"""The Python API of check_leaks' freelist control."""

import ast
import gc
import pathlib

import check_leaks
import pytest
from check_leaks import _shim
from freelist_checks import assert_consistent


@pytest.fixture(autouse=True)
def restore_freelists():
    with check_leaks.precise_tracebacks(False):
        yield


def test_precise_tracebacks_returns_the_previous_state():
    # It compares like a bool, which is what is tested here.
    assert check_leaks.precise_tracebacks(True) == False  # noqa: E712
    previous = check_leaks.precise_tracebacks(True)
    assert previous == True and bool(previous) and repr(previous) == "True"  # noqa: E712
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


def test_the_stub_types_kinds_as_the_shim_names_them():
    """`_shim.pyi` types a kind as the literal `_Kind`: it must list KINDS,
    in order, or a type checker would pass names the shim refuses."""
    stub = pathlib.Path(_shim.__file__).with_name("_shim.pyi").read_text()
    [alias] = [
        node.value
        for node in ast.parse(stub).body
        if isinstance(node, ast.TypeAlias) and node.name.id == "_Kind"
    ]
    assert isinstance(alias, ast.Subscript) and isinstance(alias.slice, ast.Tuple)
    names = tuple(ast.literal_eval(element) for element in alias.slice.elts)
    assert names == _shim.KINDS
