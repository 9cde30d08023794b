"""The Python API of check_leaks' freelist control."""

import check_leaks
import pytest


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
        assert 0 <= info.length <= info.capacity


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
