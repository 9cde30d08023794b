"""Freelist regression tests, and where precise mode says a closure cell
was made.

Each test runs a scenario from freelist_scenarios twice in one process: with
freelists on, which is how an unpatched interpreter behaves, and in precise
mode. It asserts the misleading result on the first run and the truth on the
second.
"""

import gc
import sys

import check_leaks
import freelist_scenarios as scenarios
import pytest
from flavors import kinds, needs_pydebug, needs_specialization


def both_ways(scenario, *args):
    """The scenario's facts with freelists on, then in precise mode."""
    with check_leaks.precise_tracebacks(False):
        misleading = scenario(*args)
    with check_leaks.precise_tracebacks(True):
        truthful = scenario(*args)
    return misleading, truthful


@pytest.mark.parametrize("kind", kinds(scenarios.FACTORIES))
def test_reused_object_is_traced_to_the_line_that_made_it(kind):
    misleading, truthful = both_ways(scenarios.untraced_reuse, kind)
    assert not misleading["has_traceback"], (
        "a list filled before tracing hands out untraced objects"
    )
    assert truthful["names_creating_line"]


@pytest.mark.parametrize("kind", kinds(scenarios.PARKED_KINDS))
def test_dead_objects_leave_no_memory_behind(kind):
    misleading, truthful = both_ways(scenarios.parked_memory, kind)
    assert misleading["traced_bytes"] > 0, "parked objects look alive to tracemalloc"
    if kind in scenarios.FACTORIES and check_leaks.freelists()[kind].capacity >= scenarios.BATCH:
        # The object made while warming up may be parked already.
        assert misleading["extra_blocks"] >= scenarios.BATCH - 1, (
            "parked objects hold allocator blocks"
        )
    assert truthful["traced_bytes"] == 0
    assert truthful["extra_blocks"] < scenarios.BATCH // 4


def test_dict_keys_table_is_traced_to_the_dict_that_uses_it():
    misleading, truthful = both_ways(scenarios.stale_keys_site)
    assert misleading["dead_line_bytes"] > 0, "a reused keys table keeps the site of its first use"
    assert truthful["dead_line_bytes"] == 0
    assert truthful["live_line_bytes"] > misleading["live_line_bytes"]


def test_a_closure_cell_is_traced_to_its_function_not_its_caller():
    misleading, truthful = both_ways(scenarios.closure_cell_site)
    assert misleading["names_caller"], "the frame making the cell is skipped as incomplete"
    assert truthful["names_function"]


@needs_specialization
def test_float_result_is_traced_to_the_line_that_computed_it():
    misleading, truthful = both_ways(scenarios.float_operand_site)
    assert misleading["names_operand_line"], "the result reuses the dead operand"
    assert truthful["names_computing_line"]


@needs_specialization
def test_float_freelist_alone_does_not_stop_operand_reuse():
    with check_leaks.precise_tracebacks(False):
        check_leaks.set_freelist("float", False)
        facts = scenarios.float_operand_site()
    assert facts["names_operand_line"], "only the float_operand kind stops it"


@pytest.mark.parametrize("kind", scenarios.RESULT_ITERATORS)
def test_iterator_result_is_traced_to_the_step_that_made_it(kind):
    misleading, truthful = both_ways(scenarios.result_tuple_site, kind)
    assert misleading["has_traceback"] and not misleading["names_next_line"], (
        "a refilled result tuple keeps the traceback of an earlier step"
    )
    assert truthful["names_next_line"]


def test_emptied_deque_gives_its_blocks_back():
    misleading, truthful = both_ways(scenarios.deque_spare_blocks)
    assert misleading["held_blocks"] >= scenarios.DEQUE_SPARE_BLOCKS, (
        "an emptied deque keeps spare blocks"
    )
    # One parked block is the deque's first, made before tracing started.
    assert misleading["first_fill_blocks"] >= scenarios.DEQUE_SPARE_BLOCKS - 1, (
        "a reused block keeps the traceback of the fill that first made it"
    )
    assert truthful["held_blocks"] < scenarios.DEQUE_SPARE_BLOCKS // 4
    assert truthful["first_fill_blocks"] == 0


@pytest.mark.parametrize("kind", scenarios.SAME_SIZE_KINDS)
def test_dead_address_goes_back_to_the_allocator(kind):
    misleading, truthful = both_ways(scenarios.id_reuse, kind)
    assert not misleading["allocator_reused_it"], (
        "the freelist reserves the dead object's id for its kind"
    )
    assert misleading["same_kind_took_it"]
    assert truthful["allocator_reused_it"] and not truthful["same_kind_took_it"]


@needs_pydebug
def test_freed_float_is_poisoned_by_the_debug_allocator():
    misleading, truthful = both_ways(scenarios.freed_float_bytes)
    assert misleading["still_readable"] and not misleading["poisoned"]
    assert truthful["poisoned"]


@pytest.mark.parametrize("kind", scenarios.SAME_SIZE_KINDS)
def test_switching_back_on_restores_reuse(kind):
    with check_leaks.precise_tracebacks():
        assert check_leaks.set_freelist(kind, True) is False
        assert scenarios.id_reuse(kind)["same_kind_took_it"]


@pytest.mark.parametrize("kind", kinds(scenarios.PARKED_KINDS))
def test_switched_off_kind_stays_empty_across_gc(kind):
    with check_leaks.precise_tracebacks(False):
        scenarios.fill(kind)
        assert check_leaks.freelists()[kind].length > 0
    with check_leaks.precise_tracebacks(False):
        assert check_leaks.set_freelist(kind, False) is True
        for _ in range(3):
            gc.collect()
            scenarios.fill(kind)
        info = check_leaks.freelists()[kind]
        assert (info.enabled, info.length) == (False, 0)


@needs_pydebug
def test_total_refcount_stays_flat_over_repeated_switching():
    def switch_every_kind():
        for kind in check_leaks.KINDS:
            for enabled in (False, True):
                check_leaks.set_freelist(kind, enabled)
                if kind in scenarios.PARKED_KINDS:
                    scenarios.fill(kind)

    def refcount_deltas(work):
        # Warm-up runs first, as regrtest -R does, so lazy caches settle.
        deltas = []
        for run in range(8):
            gc.collect()
            before = sys.gettotalrefcount()
            work()
            gc.collect()
            if run >= 3:
                deltas.append(sys.gettotalrefcount() - before)
        return deltas

    # The measuring loop itself moves the count; compare with measuring nothing.
    assert refcount_deltas(switch_every_kind) == refcount_deltas(lambda: None)
