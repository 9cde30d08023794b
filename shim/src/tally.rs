//! The cheap first look at a check: did the runs leave anything behind at
//! all? Most checked code leaves nothing, and saying so needs no traceback
//! and no reverse index: two walks of the trace-refs table, and counters
//! that are O(1) in between.
//!
//! The look is exact in one direction: every leak the full check can find
//! changes something recorded here (a new object alive, an old object's
//! count, a block, a descriptor), so a tally that stays level proves the
//! full check would report nothing.

use std::hash::{DefaultHasher, Hasher};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::bindings;
use crate::objects::{for_each_traced, last_serial};
use crate::snapshot::open_descriptors;

/// What the walk of the trace-refs table finds.
#[derive(PartialEq, Eq, Debug)]
struct Walk {
    /// Objects made since the tally started that are still alive.
    new_objects: usize,
    /// An order-free digest of (serial, reference count) of every object
    /// alive at the start that is still alive: any change to any of them,
    /// freeing included, changes it.
    old_objects: u64,
}

/// The O(1) counters read at every record.
#[derive(PartialEq, Eq, Debug)]
struct Counters {
    objects: isize,
    /// Blocks held by the debug allocator hooks, in every domain.
    blocks: isize,
    descriptors: Vec<(i32, String)>,
}

/// Counters of the heap between runs. The table of objects is walked twice,
/// at the first record and at the last; every record in between reads
/// only counters.
#[pyclass(module = "check_leaks._shim")]
pub struct Tally {
    /// The last allocation serial before the first record.
    watermark: u64,
    start: Option<Walk>,
    end: Option<Walk>,
    records: Vec<Counters>,
}

#[pymethods]
impl Tally {
    /// An empty tally. Fails where the debug allocator hooks are off
    /// (`PYTHONMALLOC` other than the debug default): raw blocks could not
    /// be counted.
    #[new]
    fn new() -> PyResult<Self> {
        if live_blocks() < 0 {
            return Err(PyRuntimeError::new_err(
                "the debug allocator hooks are off (PYTHONMALLOC), so blocks cannot be counted",
            ));
        }
        Ok(Tally {
            watermark: 0,
            start: None,
            end: None,
            records: Vec::new(),
        })
    }

    /// Record the counters. The first record also walks the heap and sets
    /// the watermark: objects made after it are new. The `last` one walks
    /// it again, for `level()`. Both walks run inside this same method, so
    /// the caller's stack holds the same references at each.
    #[pyo3(signature = (last, /))]
    fn record(&mut self, py: Python<'_>, last: bool) {
        if self.start.is_none() {
            self.watermark = last_serial(py);
            self.start = Some(self.walk(py));
        }
        self.records.push(Counters {
            // SAFETY: the token proves the GIL; reads one length.
            objects: unsafe { bindings::PyTraceRefs_Count() },
            blocks: live_blocks(),
            descriptors: open_descriptors(),
        });
        if last {
            self.end = Some(self.walk(py));
        }
    }

    /// Whether every record found the counters as the first did, and the
    /// last found no new object alive and every old one unchanged.
    fn level(&self) -> bool {
        self.records.windows(2).all(|pair| pair[0] == pair[1])
            && self.start.is_some()
            && self.start == self.end
    }

    fn __len__(&self) -> usize {
        self.records.len()
    }
}

impl Tally {
    fn walk(&self, py: Python<'_>) -> Walk {
        let watermark = self.watermark;
        let mut walk = Walk {
            new_objects: 0,
            old_objects: 0,
        };
        for_each_traced(py, |object, serial| {
            if serial > watermark {
                walk.new_objects += 1;
            } else {
                // SAFETY: the object is alive while the table is walked.
                let count = unsafe { pyo3::ffi::Py_REFCNT(object) };
                walk.old_objects = walk.old_objects.wrapping_add(mix(serial, count));
            }
        });
        walk
    }
}

/// Blocks the debug allocator hooks hold (patch 0014), -1 without them.
fn live_blocks() -> isize {
    // SAFETY: reads one counter.
    unsafe { bindings::PyUnstable_Mem_DebugLiveBlocks() }
}

/// A well-spread 64-bit value for one object's serial and count, so that
/// the wrapping sum of them changes when any one does.
fn mix(serial: u64, count: isize) -> u64 {
    // Fixed keys: digests are compared only within one process anyway.
    let mut hasher = DefaultHasher::new();
    hasher.write_u64(serial);
    hasher.write_isize(count);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_count_changes_the_digest() {
        let digest = |objects: &[(u64, isize)]| {
            objects
                .iter()
                .fold(0u64, |sum, &(serial, count)| sum.wrapping_add(mix(serial, count)))
        };
        let before = [(1, 3), (2, 1), (7, 2)];
        assert_eq!(digest(&before), digest(&[(7, 2), (1, 3), (2, 1)]));
        assert_ne!(digest(&before), digest(&[(1, 4), (2, 1), (7, 2)]));
        // Counts moved between objects, sum unchanged: still seen.
        assert_ne!(digest(&before), digest(&[(1, 2), (2, 2), (7, 2)]));
        // An old object freed.
        assert_ne!(digest(&before), digest(&[(1, 3), (7, 2)]));
    }
}
