"""Switches every freelist off or on at the start of each garbage collection,
so that CPython's own tests run while the lists are drained and refilled under
them.

`cargo xtask cpython-suite` puts this directory on PYTHONPATH, which
regrtest hands on to its worker processes, so `site` imports this module in
each of them. It loads the shim's extension module alone, without the
check_leaks package, so the tests see no more imported modules than on a
stock interpreter.
"""

import gc
from importlib.machinery import PathFinder


def _load_shim():
    package = PathFinder.find_spec("check_leaks")
    spec = PathFinder.find_spec("check_leaks._shim", package.submodule_search_locations)
    shim = spec.loader.create_module(spec)
    spec.loader.exec_module(shim)
    return shim


_shim = _load_shim()
_precise = False


def _flip(phase, info):
    global _precise
    if phase == "start":
        _precise = not _precise
        _shim.precise_tracebacks(_precise)


gc.callbacks.append(_flip)
