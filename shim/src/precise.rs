//! Precise mode: every freelist off, so every object is allocated and freed
//! through the allocator and tracemalloc attributes each one exactly.

use std::os::raw::c_uint;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyTuple};

use crate::freelist::{py_bool, set_disabled, set_enabled, ALL};

/// Whether precise mode was on before `precise_tracebacks()` switched it.
///
/// Behaves like that bool (`bool()`, `repr()`, `==`). Used as a context
/// manager, it restores the exact previous set of disabled kinds on exit.
#[pyclass(frozen, module = "check_leaks._shim")]
pub struct PreciseTracebacks {
    previous: c_uint,
}

impl PreciseTracebacks {
    fn was_precise(&self) -> bool {
        self.previous == ALL
    }
}

#[pymethods]
impl PreciseTracebacks {
    fn __bool__(&self) -> bool {
        self.was_precise()
    }

    fn __repr__(&self) -> &'static str {
        py_bool(self.was_precise())
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let was_precise = self.was_precise();
        match other.cast::<PreciseTracebacks>() {
            Ok(other) => Ok(other.get().was_precise() == was_precise),
            // Compare as the bool it stands for.
            Err(_) => PyBool::new(other.py(), was_precise).as_any().eq(other),
        }
    }

    fn __hash__(&self) -> u64 {
        // Equal to a bool, so hash like one.
        self.was_precise().into()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, py: Python<'_>, _exc_info: &Bound<'_, PyTuple>) -> PyResult<()> {
        set_disabled(py, self.previous)
    }
}

/// Switch precise mode on (every freelist off) or off (every freelist on).
///
/// With the freelists off, every object is allocated through the memory
/// allocator, so tracemalloc tracebacks are exact. This does not start
/// tracemalloc; that is up to the caller.
///
/// Returns whether precise mode was on before. As a context manager
/// (`with precise_tracebacks(): ...`) it restores the previous state of
/// every kind on exit.
#[pyfunction]
#[pyo3(signature = (enabled = true))]
pub fn precise_tracebacks(py: Python<'_>, enabled: bool) -> PyResult<PreciseTracebacks> {
    let previous = set_enabled(py, ALL, !enabled)?;
    Ok(PreciseTracebacks { previous })
}
