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

/// The addresses of the memory blocks the live `object` owns apart from
/// itself, which the allocator gave it later and which no traceback ties to
/// the line that made it: a dict's key and value tables, a list's item
/// array, a set's table beyond its small one, a bytearray's buffer.
pub fn owned_blocks(object: *mut ffi::PyObject) -> [usize; 2] {
    // SAFETY: the caller passes a live object; each cast follows the check
    // of its type, and only pointers are read.
    unsafe {
        if ffi::PyDict_Check(object) != 0 {
            let dict = object.cast::<ffi::PyDictObject>();
            [(*dict).ma_keys as usize, (*dict).ma_values as usize]
        } else if ffi::PyList_Check(object) != 0 {
            [(*object.cast::<ffi::PyListObject>()).ob_item as usize, 0]
        } else if ffi::PyAnySet_Check(object) != 0 {
            let set = object.cast::<ffi::PySetObject>();
            let small = std::ptr::addr_of_mut!((*set).smalltable).cast::<ffi::setentry>();
            let table = (*set).table;
            [if table == small { 0 } else { table as usize }, 0]
        } else if ffi::PyByteArray_Check(object) != 0 {
            [
                (*object.cast::<ffi::PyByteArrayObject>()).ob_bytes as usize,
                0,
            ]
        } else {
            [0, 0]
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` attached to the interpreter the tests link against (the
    /// one `PYO3_PYTHON` names), started by the first test that needs it.
    fn with_python<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
        Python::initialize();
        Python::attach(f)
    }

    /// The namespace that `code` leaves.
    fn run<'py>(py: Python<'py>, code: &CStr) -> PyResult<Bound<'py, PyDict>> {
        let namespace = PyDict::new(py);
        py.run(code, Some(&namespace), None)?;
        Ok(namespace)
    }

    fn get<'py>(namespace: &Bound<'py, PyDict>, name: &str) -> Bound<'py, PyAny> {
        namespace.get_item(name).unwrap().unwrap()
    }

    fn id(object: &Bound<'_, PyAny>) -> usize {
        object.as_ptr() as usize
    }

    /// What `for_each_referent` reports for `object`, sorted.
    fn referents(object: &Bound<'_, PyAny>) -> Vec<usize> {
        let mut found = Vec::new();
        for_each_referent(object.as_borrowed(), |referent| found.push(referent));
        found.sort_unstable();
        found
    }

    /// The keys and values of `dict`, sorted, each once.
    fn keys_and_values(dict: &Bound<'_, PyAny>) -> Vec<usize> {
        let mut ids = Vec::new();
        for (key, value) in dict.cast::<PyDict>().unwrap() {
            ids.extend([id(&key), id(&value)]);
        }
        ids.sort_unstable();
        ids
    }

    #[test]
    fn a_dict_reports_each_key_and_value_once() -> PyResult<()> {
        with_python(|py| {
            // 3.13's dict_traverse skips the keys of a table of str keys.
            let namespace = run(
                py,
                c"str_keys = {'check_leaks_a': object(), 'check_leaks_b': []}
mixed_keys = {'check_leaks_c': object(), 1000: [], (1, 2): 3.5}",
            )?;
            for name in ["str_keys", "mixed_keys"] {
                let dict = get(&namespace, name);
                assert_eq!(referents(&dict), keys_and_values(&dict), "{name}");
            }
            Ok(())
        })
    }

    #[test]
    fn an_instance_reports_its_class_once() -> PyResult<()> {
        with_python(|py| {
            let namespace = run(py, c"class C: pass\nc = C()")?;
            let (class, instance) = (get(&namespace, "C"), get(&namespace, "c"));
            let found = referents(&instance);
            assert_eq!(found.iter().filter(|&&r| r == id(&class)).count(), 1);
            Ok(())
        })
    }

    #[test]
    fn a_bounded_lru_cache_reports_each_entry() -> PyResult<()> {
        with_python(|py| {
            let namespace = run(
                py,
                c"import functools
def f(x): return [x]
bounded = functools.lru_cache(maxsize=8)(f)
unbounded = functools.lru_cache(maxsize=None)(f)
for cached in bounded, unbounded:
    cached(1); cached(2); cached(1)",
            )?;
            let entries = |name| {
                let cache = get(&namespace, name);
                let mut entries = Vec::new();
                for_each_referent(cache.as_borrowed(), |referent| {
                    // SAFETY: the cache holds what it references, and a
                    // type's name lives as long as the type.
                    let kind = unsafe { CStr::from_ptr((*ffi::Py_TYPE(referent as _)).tp_name) };
                    if kind == c"functools._lru_list_elem" {
                        entries.push(referent);
                    }
                });
                entries.sort_unstable();
                entries.dedup();
                entries.len()
            };
            assert_eq!(entries("bounded"), 2);
            assert_eq!(entries("unbounded"), 0);
            Ok(())
        })
    }

    #[test]
    fn a_code_object_reports_its_constants_and_names() -> PyResult<()> {
        with_python(|py| {
            let namespace = run(
                py,
                c"code = compile('check_leaks_name = (\"a\", 1.5)', '<test>', 'exec')",
            )?;
            let code = get(&namespace, "code");
            let found = referents(&code);
            for attribute in ["co_consts", "co_names", "co_filename"] {
                let held = code.getattr(attribute)?;
                assert!(found.contains(&id(&held)), "{attribute} not reported");
            }
            Ok(())
        })
    }

    #[test]
    fn null_slot_finds_the_first_empty_slot() -> PyResult<()> {
        with_python(|py| {
            // SAFETY: a new tuple of three NULL slots, of which the first is
            // given a new reference: one that C code leaked half filled. A
            // tuple with NULL slots may be traversed and freed.
            let tuple = unsafe {
                let tuple = ffi::PyTuple_New(3);
                ffi::PyTuple_SET_ITEM(tuple, 0, ffi::PyLong_FromLong(7));
                Bound::from_owned_ptr(py, tuple)
            };
            assert_eq!(null_slot(&tuple), Some(1));
            // SAFETY: likewise, a new list of two NULL slots.
            let list = unsafe { Bound::from_owned_ptr(py, ffi::PyList_New(2)) };
            assert_eq!(null_slot(&list), Some(0));
            assert_eq!(null_slot(PyTuple::new(py, [1, 2])?.as_any()), None);
            assert_eq!(null_slot(PyList::empty(py).as_any()), None);
            assert_eq!(null_slot(PyDict::new(py).as_any()), None);
            Ok(())
        })
    }

    #[test]
    fn immortal_objects_have_no_refcount() {
        with_python(|py| {
            let none = py.None().into_bound(py);
            assert_eq!(refcount(none.as_borrowed()), None);
            let list = PyList::empty(py).into_any();
            assert_eq!(refcount(list.as_borrowed()), Some(1));
        });
    }
}
