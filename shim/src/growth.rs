//! Counters of what a check's measured runs showed growing, read while the
//! code runs on untraced, so that growth that stops (a cache filling up, a
//! buffer flushed now and then) is told from growth that does not.
//!
//! One sample is one walk of the trace-refs table and a listing of the open
//! descriptors: no traceback, no reverse index. The samples are kept here,
//! not in Python, where they would be objects the checker made as the code
//! ran on: more lists and ints at every sample, in the very counts taken.

use std::collections::HashMap;

use pyo3::prelude::*;

use crate::native::native_bytes;
use crate::objects::{for_each_traced, kept_by_deallocs, serial_of, unreleased_type_refs};
use crate::snapshot::open_descriptors;

/// What to count at each sample.
#[pyclass(module = "check_leaks._shim")]
pub struct Probe {
    /// The types whose live instances are counted, held so that none can
    /// be freed and its address given to another type meanwhile.
    types: Vec<Py<PyAny>>,
    /// (id, serial) of the old objects whose reference counts are read.
    objects: Vec<(usize, u64)>,
    /// Runs made when each sample was taken.
    runs: Vec<usize>,
    samples: Vec<Vec<isize>>,
}

#[pymethods]
impl Probe {
    /// Counts the instances of `types` and the references to the objects
    /// `ids`, among others (see `sample`).
    #[new]
    fn new(py: Python<'_>, types: Vec<Py<PyAny>>, ids: Vec<usize>) -> Self {
        let objects = ids.into_iter().map(|id| (id, serial_of(py, id))).collect();
        Probe {
            types,
            objects,
            runs: Vec::new(),
            samples: Vec::new(),
        }
    }

    /// Keep one sample, taken after `runs` runs: one count per type, one
    /// reference count per object (0 once it is freed), the sum of the
    /// reference counts of every mortal object, the number of open
    /// descriptors, the native bytes (0 where they cannot be read), then
    /// `extra` as it is.
    #[pyo3(signature = (runs, extra, /))]
    fn sample(&mut self, py: Python<'_>, runs: usize, extra: Vec<isize>) {
        let sample = self.take(py, extra);
        self.runs.push(runs);
        self.samples.push(sample);
    }

    /// The runs made at the last sample.
    #[getter]
    fn runs(&self) -> usize {
        self.runs.last().copied().unwrap_or(0)
    }

    /// (runs made at each sample, the counts of each series at each).
    fn series(&self) -> (Vec<usize>, Vec<Vec<isize>>) {
        let width = self.samples.first().map_or(0, Vec::len);
        let series = (0..width)
            .map(|i| self.samples.iter().map(|sample| sample[i]).collect())
            .collect();
        (self.runs.clone(), series)
    }
}

impl Probe {
    fn take(&self, py: Python<'_>, extra: Vec<isize>) -> Vec<isize> {
        // A type may be asked for more than once: each of its groups.
        let mut by_type: HashMap<usize, isize> = (self.types.iter())
            .map(|kind| (kind.as_ptr() as usize, 0))
            .collect();
        let watched: HashMap<usize, usize> = (self.objects.iter().enumerate())
            .filter(|(_, &(id, serial))| serial_of(py, id) == serial)
            .map(|(i, &(id, _))| (id, i))
            .collect();
        let unreleased = unreleased_type_refs(py);
        let mut counts = vec![0; self.objects.len()];
        let mut references = 0;
        for_each_traced(py, |object, _| {
            // SAFETY: the table lists live objects, and nothing runs during the walk.
            let kind = unsafe { pyo3::ffi::Py_TYPE(object) } as usize;
            if let Some(instances) = by_type.get_mut(&kind) {
                *instances += 1;
            }
            // SAFETY: as above.
            let count =
                unsafe { pyo3::ffi::Py_REFCNT(object) } - kept_by_deallocs(object, &unreleased);
            // Immortal objects have the low 32 bits of the count negative (3.13, 64-bit).
            if count as i32 >= 0 {
                references += count;
            }
            if let Some(&i) = watched.get(&(object as usize)) {
                counts[i] = count;
            }
        });
        let mut sample: Vec<isize> = (self.types.iter())
            .map(|kind| by_type[&(kind.as_ptr() as usize)])
            .collect();
        sample.extend(counts);
        sample.push(references);
        sample.push(open_descriptors().len() as isize);
        sample.push(native_bytes().unwrap_or(0));
        sample.extend(extra);
        sample
    }
}
