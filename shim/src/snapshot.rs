//! Snapshots of the live heap taken between runs of the code under check, and
//! what each run left alive.

use pyo3::prelude::*;

use crate::objects::live_objects;

/// The live heap at one moment.
struct Record {
    /// The id (address) of every live object, sorted.
    ids: Vec<usize>,
    total_refcount: isize,
    allocated_blocks: isize,
}

/// Records of the live heap between runs of the code under check.
///
/// Everything is kept in Rust, so recording creates no Python object that
/// outlives the call, and the checker never measures itself.
#[pyclass(module = "check_leaks._shim")]
pub struct Snapshots {
    // Looked up once: a lookup during `record` could create objects (an
    // interned name, say) that would then count as made by the run.
    getobjects: Py<PyAny>,
    gettotalrefcount: Py<PyAny>,
    getallocatedblocks: Py<PyAny>,
    records: Vec<Record>,
}

#[pymethods]
impl Snapshots {
    #[new]
    fn new(py: Python<'_>) -> PyResult<Self> {
        let sys = py.import("sys")?;
        Ok(Snapshots {
            getobjects: sys.getattr("getobjects")?.unbind(),
            gettotalrefcount: sys.getattr("gettotalrefcount")?.unbind(),
            getallocatedblocks: sys.getattr("getallocatedblocks")?.unbind(),
            records: Vec::new(),
        })
    }

    /// Record the ids of every live object but this one, then the total
    /// refcount and the allocated blocks.
    fn record(mut slf: PyRefMut<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.as_ptr() as usize;
        let mut ids: Vec<usize> = live_objects(slf.getobjects.bind(py))?
            .iter()
            .map(|object| object.as_ptr() as usize)
            .filter(|&id| id != this)
            .collect();
        ids.sort_unstable();
        // The list is gone by now, so its references are not in the total.
        let total_refcount = slf.gettotalrefcount.bind(py).call0()?.extract()?;
        let allocated_blocks = slf.getallocatedblocks.bind(py).call0()?.extract()?;
        slf.records.push(Record {
            ids,
            total_refcount,
            allocated_blocks,
        });
        Ok(())
    }

    fn __len__(&self) -> usize {
        self.records.len()
    }

    /// For each run (each record but the first), the sorted ids of the
    /// objects it created that are still alive at the last record.
    fn survivors(&self) -> Vec<Vec<usize>> {
        let Some(last) = self.records.last() else {
            return Vec::new();
        };
        self.records
            .windows(2)
            .map(|pair| {
                let created = select(&pair[1].ids, &pair[0].ids, false);
                select(&created, &last.ids, true)
            })
            .collect()
    }

    /// How many more objects each run left alive than there were before it.
    fn object_deltas(&self) -> Vec<isize> {
        self.deltas(|record| record.ids.len() as isize)
    }

    /// How much each run changed `sys.gettotalrefcount()`.
    fn refcount_deltas(&self) -> Vec<isize> {
        self.deltas(|record| record.total_refcount)
    }

    /// How much each run changed `sys.getallocatedblocks()`.
    fn block_deltas(&self) -> Vec<isize> {
        self.deltas(|record| record.allocated_blocks)
    }
}

impl Snapshots {
    fn deltas(&self, value: impl Fn(&Record) -> isize) -> Vec<isize> {
        self.records
            .windows(2)
            .map(|pair| value(&pair[1]) - value(&pair[0]))
            .collect()
    }
}

/// The items of sorted `a` that are in sorted `b` (`in_b`), or that are not.
fn select(a: &[usize], b: &[usize], in_b: bool) -> Vec<usize> {
    let mut rest = b.iter().peekable();
    a.iter()
        .copied()
        .filter(|&id| {
            while rest.next_if(|&&other| other < id).is_some() {}
            (rest.peek() == Some(&&id)) == in_b
        })
        .collect()
}
