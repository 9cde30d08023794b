//! Raw views of the heap that the trace-refs build offers: every live object
//! (`sys.getobjects`, or a visit with each object's allocation serial), what
//! an object references (`tp_traverse`) and how many references it has.

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use pyo3::Borrowed;

use crate::bindings;

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
/// with multiplicity: what its type's `tp_traverse` reports (objects the gc
/// does not handle report nothing, as with `gc.get_referents`), and what
/// the object holds that its traversal leaves out:
/// - what `PyUnstable_Object_VisitUntraversed` (patch 0013) reports: a code
///   object's constants and names, a type's name, slots and subclasses, a
///   static type's namespace, bases and MRO, and a managed dict hidden by
///   inline values;
/// - a dict whose keys are all str reports only its values (`dict_traverse`
///   in 3.13: str keys cannot form cycles), yet holds a reference to each
///   key. A table that reported fewer than a key and a value per entry has
///   its keys added;
/// - an instance of a heap type holds a reference to its type, which types
///   written in C often leave out of their `tp_traverse`;
/// - a bounded `lru_cache` holds a reference to each of its entries.
pub fn for_each_referent<F: FnMut(usize)>(object: Borrowed<'_, '_, PyAny>, mut visit: F) {
    let mut reported = 0;
    let pointer = object.as_ptr();
    // SAFETY: `Borrowed` guarantees a live object, and a type outlives it.
    let kind = unsafe { ffi::Py_TYPE(pointer) };
    // SAFETY: `kind` is that live object's type; this reads its flags.
    let is_heap_type = unsafe { ffi::PyType_HasFeature(kind, ffi::Py_TPFLAGS_HEAPTYPE) } != 0;
    let mut type_reported = false;
    let mut count = |referent: usize| {
        reported += 1;
        type_reported |= referent == kind as usize;
        visit(referent);
    };
    traverse(object, &mut count);
    untraversed(object, &mut count);
    for_each_lru_entry(pointer, &mut count);
    if is_heap_type && !type_reported {
        visit(kind as usize);
    }
    if let Ok(dict) = object.cast::<PyDict>() {
        if reported < 2 * dict.len() {
            for (key, _) in dict.iter() {
                visit(key.as_ptr() as usize);
            }
        }
    }
}

/// The head of `struct lru_list_elem` of Modules/_functoolsmodule.c (3.13),
/// which no header declares. An `lru_cache` wrapper (`lru_cache_object`)
/// starts with one too: the root of its ring of entries.
#[repr(C)]
struct LruListElem {
    ob_base: ffi::PyObject,
    prev: *mut LruListElem,
    next: *mut LruListElem,
}

/// Calls `visit` with each entry of a bounded `lru_cache`, if `object` is
/// one: the wrapper owns a reference to each entry of its ring, besides the
/// cache dict's. (Its `tp_traverse` reports each entry's key and result, as
/// if it held them itself.)
fn for_each_lru_entry(object: *mut ffi::PyObject, mut visit: impl FnMut(usize)) {
    // SAFETY: `object` is alive; its type's name is a C string that lives
    // as long as the type, and the ring is read only once the type is known
    // to be `_lru_cache_wrapper`, whose head the struct mirrors. The ring is
    // consistent while the GIL is held.
    unsafe {
        let kind = ffi::Py_TYPE(object);
        if CStr::from_ptr((*kind).tp_name) != c"functools._lru_cache_wrapper" {
            return;
        }
        let root = object.cast::<LruListElem>();
        let mut link = (*root).next;
        while !link.is_null() && link != root {
            visit(link as usize);
            link = (*link).next;
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

fn untraversed<F: FnMut(usize)>(object: Borrowed<'_, '_, PyAny>, mut visit: F) {
    let arg: *mut F = &mut visit;
    // SAFETY: `Borrowed` guarantees a live object and the GIL; `trampoline`
    // is called only during the call, with `arg` pointing at `visit` on this
    // stack frame, and returns 0.
    unsafe {
        bindings::PyUnstable_Object_VisitUntraversed(object.as_ptr(), trampoline::<F>, arg.cast());
    }
}

unsafe extern "C" fn trampoline<F: FnMut(usize)>(
    referent: *mut ffi::PyObject,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: `traverse` and `untraversed` pass a pointer to their live `F`
    // as `arg`.
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

/// Calls `visit` with every traced object and its allocation serial.
///
/// `visit` must not create or destroy Python objects: the interpreter's table
/// of live objects is being walked.
pub fn for_each_traced<F: FnMut(*mut ffi::PyObject, u64)>(_py: Python<'_>, mut visit: F) {
    unsafe extern "C" fn trampoline<F: FnMut(*mut ffi::PyObject, u64)>(
        object: *mut ffi::PyObject,
        serial: u64,
        arg: *mut c_void,
    ) -> c_int {
        // SAFETY: `for_each_traced` passes a pointer to its live `F` as `arg`.
        let visit = unsafe { &mut *arg.cast::<F>() };
        visit(object, serial);
        0
    }
    let arg: *mut F = &mut visit;
    // SAFETY: the token proves the GIL; `trampoline` is called only during
    // the walk, with `arg` pointing at `visit` on this stack frame, and
    // returns 0, so the walk never stops early and never fails.
    unsafe {
        bindings::PyTraceRefs_Visit(Some(trampoline::<F>), arg.cast());
    }
}

/// References to heap types that their dead instances' tp_dealloc kept
/// (patch 0019), by type id: they keep only the type alive, so every count
/// of references leaves them out.
pub type UnreleasedTypeRefs = HashMap<usize, isize>;

pub fn unreleased_type_refs(_py: Python<'_>) -> UnreleasedTypeRefs {
    unsafe extern "C" fn trampoline(
        object: *mut ffi::PyTypeObject,
        count: ffi::Py_ssize_t,
        arg: *mut c_void,
    ) -> c_int {
        // SAFETY: `unreleased_type_refs` passes a pointer to its live map as `arg`.
        let found = unsafe { &mut *arg.cast::<UnreleasedTypeRefs>() };
        found.insert(object as usize, count);
        0
    }
    let mut found = UnreleasedTypeRefs::new();
    let arg: *mut UnreleasedTypeRefs = &mut found;
    // SAFETY: the token proves the GIL; `trampoline` only runs during the
    // call, with `arg` pointing at `found`, and creates no Python object.
    unsafe {
        bindings::PyTraceRefs_VisitUnreleasedTypeRefs(Some(trampoline), arg.cast());
    }
    found
}

/// How many of the references to the live `object` its dead instances'
/// deallocs kept: 0 unless it is a heap type in `unreleased`.
pub fn kept_by_deallocs(object: *mut ffi::PyObject, unreleased: &UnreleasedTypeRefs) -> isize {
    // SAFETY: the caller passes a live object; the check reads its type's flags.
    if unreleased.is_empty() || unsafe { ffi::PyType_Check(object) } == 0 {
        return 0;
    }
    unreleased.get(&(object as usize)).copied().unwrap_or(0)
}

/// The allocation serial of the object at `id`, 0 if it is not traced.
pub fn serial_of(_py: Python<'_>, id: usize) -> u64 {
    // SAFETY: the token proves the GIL; the address is only looked up.
    unsafe { bindings::PyTraceRefs_GetSerial(id as *mut ffi::PyObject) }
}

/// The last allocation serial given.
pub fn last_serial(_py: Python<'_>) -> u64 {
    // SAFETY: the token proves the GIL.
    unsafe { bindings::PyTraceRefs_LastSerial() }
}

/// The index of the first empty (NULL) slot of a tuple or list, or `None`.
///
/// C code fills a new tuple slot by slot; one leaked from an error path
/// before it was full has NULL slots, and iterating or printing it crashes.
#[pyfunction]
pub fn null_slot(obj: &Bound<'_, PyAny>) -> Option<usize> {
    let object = obj.as_ptr();
    // SAFETY: `obj` is alive, and the size and slots read are the tuple's or
    // list's own, within its size.
    unsafe {
        if ffi::PyTuple_Check(object) != 0 {
            (0..ffi::PyTuple_GET_SIZE(object))
                .position(|i| ffi::PyTuple_GET_ITEM(object, i).is_null())
        } else if ffi::PyList_Check(object) != 0 {
            (0..ffi::PyList_GET_SIZE(object))
                .position(|i| ffi::PyList_GET_ITEM(object, i).is_null())
        } else {
            None
        }
    }
}

/// Calls `visit` with every object the interpreter and its threads hold a
/// strong reference to from C, once per reference, and where it is kept in
/// words (patch 0012).
///
/// `visit` must not create or destroy Python objects.
pub fn for_each_root<F: FnMut(usize, &str)>(_py: Python<'_>, mut visit: F) {
    unsafe extern "C" fn trampoline<F: FnMut(usize, &str)>(
        object: *mut ffi::PyObject,
        description: *const c_char,
        arg: *mut c_void,
    ) -> c_int {
        // SAFETY: `for_each_root` passes a pointer to its live `F` as `arg`,
        // and the description is a C string valid during the call.
        let (visit, description) = unsafe { (&mut *arg.cast::<F>(), CStr::from_ptr(description)) };
        visit(object as usize, &description.to_string_lossy());
        0
    }
    let arg: *mut F = &mut visit;
    // SAFETY: the token proves the GIL; `trampoline` is called only during
    // the walk, with `arg` pointing at `visit` on this stack frame, and
    // returns 0, so the walk never stops early.
    unsafe {
        bindings::PyUnstable_VisitInterpreterRoots(Some(trampoline::<F>), arg.cast());
    }
}
