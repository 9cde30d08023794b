"""Checks on the reports of check_leaks.freelists() that several tests share."""


def assert_consistent(info):
    """A list holds exactly what its counters leave on it."""
    if info.capacity == 0:  # reuse in place: nothing is ever parked
        assert (info.length, info.pushes, info.drains) == (0, 0, 0), info
    else:
        assert info.length == info.pushes - info.hits - info.drains, info
