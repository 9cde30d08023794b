//! The cheap first look at a check: could the runs have leaked at all?
//! Saying no needs no traceback and no reverse index: O(1) counters at every
//! record, and a walk of the trace-refs table at the records the caller
//! asks for (signs compare the last two).
//!
//! Every leak the full check reports grows in every measured run, so each
//! kind has a sign, in every run, that costs next to nothing:
//! - a group of objects: every run left an object alive (by serial);
//! - references on an object that existed before the runs: its count rose
//!   in the last run, which changes a digest of all their counts;
//! - references spread over many objects: the sum of all counts rose in
//!   the last run;
//! - raw blocks: the debug hooks' live block count rose in some run;
//! - descriptors: more were open after the last run;
//! - native memory: malloc's heap held more for C code after every run
//!   than before it, by more than its slack.
//!
//! A tally that shows none of these after any run proves the full check
//! would report no leak, however many runs were to follow. Code that
//! replaces what an earlier run made stays cheap from its second run on.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::bindings;
use crate::native::{native_bytes, SLACK};
use crate::objects::{for_each_traced, kept_by_deallocs, last_serial, unreleased_type_refs};
use crate::snapshot::{open_descriptors, run_of};

/// What a walk of the trace-refs table finds.
#[derive(Debug)]
struct Walk {
    /// For each run so far, how many of the objects it made are alive.
    survivors: Vec<usize>,
    /// An order-free digest of (serial, reference count) of every object
    /// alive at the first record that is still alive: any change to any of
    /// them, freeing included, changes it.
    old_objects: u64,
    /// The sum of the reference counts of every mortal object, less the
    /// references to types their dead instances' deallocs kept.
    references: isize,
}

/// The counters read at every record.
#[derive(Debug)]
struct Record {
    /// The last allocation serial given before the record.
    last_serial: u64,
    /// Blocks held by the debug allocator hooks, in every domain.
    blocks: isize,
    /// Bytes malloc's heap holds for native code (see `native`).
    native: Option<isize>,
    descriptors: Vec<(i32, String)>,
    walk: Option<Walk>,
}

/// Counters of the heap between runs.
#[pyclass(module = "check_leaks._shim")]
pub struct Tally {
    records: Vec<Record>,
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
            records: Vec::new(),
        })
    }

    /// Record the counters, and with `walk` the trace-refs table too (signs
    /// need the last two records walked). Every walk runs inside this one
    /// method, so the caller's stack holds the same references at each.
    #[pyo3(signature = (walk, /))]
    fn record(&mut self, py: Python<'_>, walk: bool) {
        let last_serial = last_serial(py);
        let walk = walk.then(|| {
            let mut bounds: Vec<u64> = self.records.iter().map(|r| r.last_serial).collect();
            bounds.push(last_serial);
            walk_table(py, &bounds)
        });
        self.records.push(Record {
            last_serial,
            blocks: live_blocks(),
            native: native_bytes(),
            descriptors: open_descriptors(),
            walk,
        });
    }

    /// What could be a leak in the runs recorded so far, in words: empty
    /// when the full check would report none.
    fn signs(&self) -> Vec<String> {
        let mut signs = Vec::new();
        for (run, pair) in self.records.windows(2).enumerate() {
            let grown = pair[1].blocks - pair[0].blocks;
            if grown > 0 {
                signs.push(format!("run {}: {grown:+} blocks", run + 1));
            }
        }
        // A native candidate grew in every measured run: its allocator's
        // caches move the count now and then, which alone is no sign.
        let native = native_deltas(self.records.iter().map(|record| record.native));
        if !native.is_empty() && native.iter().all(|&grown| grown > SLACK) {
            signs.push(format!(
                "native memory grew in every run: {native:+?} bytes"
            ));
        }
        let [.., before, last] = self.records.as_slice() else {
            return vec!["no run recorded".to_owned()];
        };
        if last.descriptors.len() > before.descriptors.len() {
            signs.push("the last run left a descriptor open".to_owned());
        }
        let (Some(previous), Some(now)) = (&before.walk, &last.walk) else {
            return vec!["the last two runs were not walked".to_owned()];
        };
        if now.survivors.iter().all(|&alive| alive > 0) {
            signs.push(format!("objects alive from every run: {:?}", now.survivors));
        }
        if now.old_objects != previous.old_objects {
            signs.push("the last run changed objects older than the runs".to_owned());
        }
        if now.references > previous.references {
            let grown = now.references - previous.references;
            signs.push(format!("the last run added {grown} references"));
        }
        signs
    }

    fn __len__(&self) -> usize {
        self.records.len()
    }

    /// How much each run changed the native bytes (see `native`); empty
    /// where they cannot be read.
    fn native_deltas(&self) -> Vec<isize> {
        native_deltas(self.records.iter().map(|record| record.native))
    }
}

/// The change from each reading to the next; empty if any is missing.
fn native_deltas(readings: impl Iterator<Item = Option<isize>>) -> Vec<isize> {
    let Some(readings) = readings.collect::<Option<Vec<_>>>() else {
        return Vec::new();
    };
    readings.windows(2).map(|pair| pair[1] - pair[0]).collect()
}

/// Survivors per run (runs bounded by `bounds`, the last serial of each
/// record so far and of this one), the digest of the objects older than the first record,
/// and the sum of all counts.
fn walk_table(py: Python<'_>, bounds: &[u64]) -> Walk {
    let first = bounds.first().copied();
    let unreleased = unreleased_type_refs(py);
    let mut walk = Walk {
        survivors: vec![0; bounds.len().saturating_sub(1)],
        old_objects: 0,
        references: 0,
    };
    // One pass, in the interpreter's order of its array of traced objects
    // (patch 0017): reading each count costs little more than the visit.
    for_each_traced(py, |object, serial| {
        // SAFETY: the table lists live objects, and nothing runs during the walk.
        let count = unsafe { pyo3::ffi::Py_REFCNT(object) } - kept_by_deallocs(object, &unreleased);
        // Immortal objects have the low 32 bits of the count negative (3.13, 64-bit).
        if count as i32 >= 0 {
            walk.references += count;
        }
        match first {
            Some(first) if serial > first => {
                let run = run_of(bounds, serial);
                if let Some(alive) = run.and_then(|run| walk.survivors.get_mut(run)) {
                    *alive += 1;
                }
            }
            _ => walk.old_objects = walk.old_objects.wrapping_add(mix(serial, count)),
        }
    });
    walk
}

/// Blocks the debug allocator hooks hold (patch 0014), -1 without them.
fn live_blocks() -> isize {
    // SAFETY: reads one counter.
    unsafe { bindings::PyUnstable_Mem_DebugLiveBlocks() }
}

/// A well-spread 64-bit value for one object's serial and count, so that
/// the wrapping sum of them changes when any one does: splitmix64's
/// finaliser, a few cycles where the walk spends its time waiting on memory.
fn mix(serial: u64, count: isize) -> u64 {
    let mut z = serial.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (count as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_count_changes_the_digest() {
        let digest = |objects: &[(u64, isize)]| {
            objects.iter().fold(0u64, |sum, &(serial, count)| {
                sum.wrapping_add(mix(serial, count))
            })
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
