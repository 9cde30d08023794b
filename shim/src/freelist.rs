//! The freelist kinds, safe wrappers over the C API, and the functions that
//! inspect and switch single kinds.

use std::ffi::CStr;
use std::os::raw::{c_int, c_uint};
use std::sync::OnceLock;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::bindings as ffi;

/// The mask of every kind.
pub const ALL: c_uint = ffi::PyFreeList_ALL;

/// Every kind by its Python name (its C name, lower-cased) with its bit, in
/// bit order: read from the C table, so a new kind needs no change here.
fn kinds() -> &'static [(String, c_uint)] {
    static KINDS: OnceLock<Vec<(String, c_uint)>> = OnceLock::new();
    KINDS.get_or_init(|| {
        // The header asserts the bits run from 0 with no gap.
        (0..c_uint::BITS)
            .map(|bit| 1 << bit)
            .take_while(|kind| kind & ALL != 0)
            .map(|kind| {
                // SAFETY: needs no thread state; returns NULL or a static,
                // NUL-terminated C string.
                let name = unsafe { ffi::PyFreeList_GetName(kind) };
                assert!(!name.is_null(), "freelist kind {kind:#x} has no name");
                // SAFETY: checked non-NULL above; static for the process.
                let name = unsafe { CStr::from_ptr(name) };
                (name.to_string_lossy().to_ascii_lowercase(), kind)
            })
            .collect()
    })
}

/// The kind names as the tuple exported as `KINDS`.
pub fn kind_names(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    PyTuple::new(py, kinds().iter().map(|(name, _)| name))
}

/// The mask named by `kind`: one kind, or `"all"`.
fn mask_of(kind: &str) -> PyResult<c_uint> {
    if kind == "all" {
        return Ok(ALL);
    }
    kinds()
        .iter()
        .find(|(name, _)| name == kind)
        .map(|&(_, bit)| bit)
        .ok_or_else(|| {
            let names = kinds().iter().map(|(name, _)| name.as_str());
            let names = names.collect::<Vec<_>>().join(", ");
            PyValueError::new_err(format!(
                "unknown freelist kind '{kind}'; expected one of: all, {names}"
            ))
        })
}

/// Switches the kinds in `mask` on or off; returns the mask of kinds that
/// were off before.
pub fn set_enabled(py: Python<'_>, mask: c_uint, enabled: bool) -> PyResult<c_uint> {
    // SAFETY: the `Python` token proves this thread has an attached thread
    // state, which the header asks for.
    let previous = unsafe { ffi::PyFreeList_SetEnabled(mask, c_int::from(enabled)) };
    // Negative only on failure, with the ValueError set.
    c_uint::try_from(previous).map_err(|_| PyErr::fetch(py))
}

/// Switches off exactly the kinds in `disabled` and on all others.
pub fn set_disabled(py: Python<'_>, disabled: c_uint) -> PyResult<()> {
    set_enabled(py, disabled, false)?;
    set_enabled(py, ALL & !disabled, true)?;
    Ok(())
}

fn info(py: Python<'_>, kind: c_uint) -> PyResult<ffi::PyFreeListInfo> {
    let mut info = ffi::PyFreeListInfo::default();
    // SAFETY: attached thread state (token), and `info` is a valid place
    // to write.
    match unsafe { ffi::PyFreeList_GetInfo(kind, &mut info) } {
        0 => Ok(info),
        _ => Err(PyErr::fetch(py)),
    }
}

/// Python's spelling of a bool, for reprs.
pub fn py_bool(value: bool) -> &'static str {
    if value {
        "True"
    } else {
        "False"
    }
}

/// The state of one freelist kind when `freelists()` was called.
///
/// `length` counts the entries parked on the current thread's list and
/// `capacity` the most it can park. `since_startup` is true while the kind is
/// still off since `-X precise_tracebacks` (or `PYTHONPRECISETRACEBACKS`)
/// switched it off at startup. `pushes`, `hits` and `drains` count, since the
/// interpreter started, the entries parked, the allocations served from the
/// list (or, for the reuse kinds, the reuses) and the parked entries freed.
#[pyclass(frozen, get_all, module = "check_leaks._shim")]
pub struct FreeList {
    kind: &'static str,
    enabled: bool,
    length: isize,
    capacity: isize,
    since_startup: bool,
    pushes: isize,
    hits: isize,
    drains: isize,
}

#[pymethods]
impl FreeList {
    fn __repr__(&self) -> String {
        format!(
            "FreeList(kind='{}', enabled={}, length={}, capacity={}, since_startup={}, \
             pushes={}, hits={}, drains={})",
            self.kind,
            py_bool(self.enabled),
            self.length,
            self.capacity,
            py_bool(self.since_startup),
            self.pushes,
            self.hits,
            self.drains,
        )
    }
}

/// The state of every freelist kind, keyed by kind name in `KINDS` order.
#[pyfunction]
pub fn freelists(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    for (kind, bit) in kinds() {
        let info = info(py, *bit)?;
        let freelist = FreeList {
            kind: kind.as_str(),
            enabled: info.enabled != 0,
            length: info.length,
            capacity: info.capacity,
            since_startup: info.off_since_startup != 0,
            pushes: info.pushes,
            hits: info.hits,
            drains: info.drains,
        };
        dict.set_item(kind, freelist)?;
    }
    Ok(dict)
}

/// Switch the freelist `kind` (a name from `KINDS`, or "all") on or off.
///
/// Switching a kind off drains its list, so every object of that kind then
/// goes through the memory allocator. Returns whether the kind was enabled
/// before (for "all": whether every kind was).
#[pyfunction]
pub fn set_freelist(py: Python<'_>, kind: &str, enabled: bool) -> PyResult<bool> {
    let mask = mask_of(kind)?;
    Ok(set_enabled(py, mask, enabled)? & mask == 0)
}
