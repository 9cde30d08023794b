"""Switching a kind reaches every thread.

The free-threaded build keeps a set of freelists per thread, so a switch must
stop the world and empty every thread's list, and threads started later must
begin with the switch applied. With the GIL the lists are per interpreter and
the same facts hold.
"""

import threading

import check_leaks
import freelist_scenarios as scenarios
import pytest
from flavors import kinds
from freelist_checks import assert_consistent


@pytest.mark.parametrize("kind", kinds(scenarios.FACTORIES))
def test_switch_empties_the_list_of_a_running_thread(kind):
    with check_leaks.precise_tracebacks(False):
        misleading = scenarios.reuse_after_switch(kind, switch=lambda: None)
        truthful = scenarios.reuse_after_switch(
            kind, switch=lambda: check_leaks.set_freelist(kind, False)
        )
    assert not misleading["has_traceback"], (
        "the other thread reuses an object it parked before tracing"
    )
    assert truthful["names_creating_line"]


@pytest.mark.parametrize("kind", kinds(scenarios.FACTORIES))
def test_thread_started_after_a_switch_starts_with_it(kind):
    with check_leaks.precise_tracebacks(False):
        misleading = scenarios.in_new_thread(scenarios.untraced_reuse, kind)
    with check_leaks.precise_tracebacks(True):
        truthful = scenarios.in_new_thread(scenarios.untraced_reuse, kind)
    assert not misleading["has_traceback"], (
        "a new thread's list fills before tracing like any other"
    )
    assert truthful["names_creating_line"]


def test_switching_while_threads_churn_keeps_every_list_consistent():
    """Threads allocate and free without pause while this thread flips every
    kind. Afterwards each thread's lists hold exactly what their counters say,
    and one more switch from here keeps all of them empty."""
    workers = 3
    stop = threading.Event()
    # A timeout turns a worker that died into a failure instead of a hang.
    stopped, switched = (threading.Barrier(workers + 1, timeout=60) for _ in range(2))
    on, off = [], []

    def churn():
        while not stop.is_set():
            for make in scenarios.FACTORIES.values():
                make()
        on.append(check_leaks.freelists())
        stopped.wait()
        switched.wait()
        for make in scenarios.FACTORIES.values():
            make()  # which also frees the lists that drain lazily
        off.append(check_leaks.freelists())

    with check_leaks.precise_tracebacks(False):
        threads = [threading.Thread(target=churn) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for _ in range(200):
            check_leaks.precise_tracebacks(True)
            check_leaks.precise_tracebacks(False)
        stop.set()
        stopped.wait()
        check_leaks.precise_tracebacks(True)
        switched.wait()
        for thread in threads:
            thread.join()
    for report in on + off:
        for info in report.values():
            assert_consistent(info)
    assert any(info.length > 0 for report in on for info in report.values())
    for report in off:
        assert all(info.length == 0 for info in report.values()), report
