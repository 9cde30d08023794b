//! `check_leaks._shim`: Python control over the freelists of the patched
//! CPython 3.13 that check_leaks runs on, and the heap analysis that must be
//! fast: snapshots of the live objects and the graph of who references whom.

use pyo3::prelude::*;

mod bindings;
mod checkpoints;
mod freelist;
mod growth;
mod heap;
mod native;
mod objects;
mod precise;
mod snapshot;
mod stopwatch;
mod tally;

// Counts the shim's own heap, which `native` leaves out of what C code holds.
#[global_allocator]
static ALLOCATOR: native::Counting = native::Counting;

/// Native core of check_leaks: switch CPython's freelists on and off, and
/// analyse the live heap.
#[pymodule]
fn _shim(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NATIVE_SLACK", native::SLACK)?;
    m.add_function(wrap_pyfunction!(native::py_native_bytes, m)?)?;
    m.add("KINDS", freelist::kind_names(m.py())?)?;
    m.add_class::<freelist::FreeList>()?;
    m.add_function(wrap_pyfunction!(freelist::freelists, m)?)?;
    m.add_function(wrap_pyfunction!(freelist::set_freelist, m)?)?;
    m.add_class::<precise::PreciseTracebacks>()?;
    m.add_function(wrap_pyfunction!(precise::precise_tracebacks, m)?)?;
    m.add_class::<snapshot::Snapshots>()?;
    m.add_class::<tally::Tally>()?;
    m.add_class::<growth::Probe>()?;
    m.add_class::<stopwatch::Stopwatch>()?;
    m.add_class::<heap::Heap>()?;
    m.add_class::<checkpoints::Checkpoints>()?;
    m.add_function(wrap_pyfunction!(objects::null_slot, m)?)?;
    m.add_function(wrap_pyfunction!(snapshot::first_free_descriptor, m)?)?;
    Ok(())
}
