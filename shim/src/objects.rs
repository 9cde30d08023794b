//! Raw views of the heap that the trace-refs build offers: every live object
//! (`sys.getobjects`), what an object references (`tp_traverse`) and how many
//! references it has.

use std::os::raw::{c_int, c_void};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use pyo3::Borrowed;

/// Every live object, from `getobjects` (the function `sys.getobjects`).
///
/// A new list, which holds a reference to each object and is not in itself.
/// The argument tuple of the call is alive during it, so `getobjects` lists
/// it too; it is taken out again, so nothing in the list is made by this call.
pub fn live_objects<'py>(getobjects: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    let py = getobjects.py();
    let args = PyTuple::new(py, [0])?;
    let objects = getobjects.call1(&args)?.cast_into::<PyList>()?;
    if let Some(index) = objects.iter().position(|object| object.is(&args)) {
        objects.del_item(index)?;
    }
    Ok(objects)
}

/// Calls `visit` with the address of every object that `object` references,
/// as its type's `tp_traverse` reports them, with multiplicity. Objects the
/// gc does not handle report nothing, exactly as with `gc.get_referents`.
///
/// One addition: a dict whose keys are all str reports only its values
/// (`dict_traverse` in 3.13: str keys cannot form cycles), yet holds a
/// reference to each key. Without them a str leaked as a dict key would look
/// held from C. A table that reported fewer than a key and a value per entry
/// has its keys added.
pub fn for_each_referent<F: FnMut(usize)>(object: Borrowed<'_, '_, PyAny>, mut visit: F) {
    let mut reported = 0;
    traverse(object, |referent| {
        reported += 1;
        visit(referent);
    });
    if let Ok(dict) = object.cast::<PyDict>() {
        if reported < 2 * dict.len() {
            for (key, _) in dict.iter() {
                visit(key.as_ptr() as usize);
            }
        }
    }
}

fn traverse<F: FnMut(usize)>(object: Borrowed<'_, '_, PyAny>, mut visit: F) {
    let object = object.as_ptr();
    // SAFETY: `Borrowed` guarantees a live object and that the GIL is held;
    // the type outlives its instance. `trampoline` is called only during
    // `traverse`, with `arg` pointing at `visit` on this stack frame, and it
    // returns 0, so the walk never stops early.
    unsafe {
        let kind = ffi::Py_TYPE(object);
        // CPython's `_PyObject_IS_GC`.
        let is_gc =
            ffi::PyType_IS_GC(kind) != 0 && (*kind).tp_is_gc.is_none_or(|is_gc| is_gc(object) != 0);
        if let (true, Some(traverse)) = (is_gc, (*kind).tp_traverse) {
            let arg: *mut F = &mut visit;
            traverse(object, trampoline::<F>, arg.cast());
        }
    }
}

unsafe extern "C" fn trampoline<F: FnMut(usize)>(
    referent: *mut ffi::PyObject,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: `for_each_referent` passes a pointer to its live `F` as `arg`.
    let visit = unsafe { &mut *arg.cast::<F>() };
    visit(referent as usize);
    0
}

/// The reference count of `object`, or `None` if it is immortal: its count
/// then means nothing and nothing can leak it.
pub fn refcount(object: Borrowed<'_, '_, PyAny>) -> Option<isize> {
    // SAFETY: `Borrowed` guarantees a live object.
    let count = unsafe { ffi::Py_REFCNT(object.as_ptr()) };
    // Immortal objects have the low 32 bits of the count negative (3.13, 64-bit).
    (count as i32 >= 0).then_some(count)
}
