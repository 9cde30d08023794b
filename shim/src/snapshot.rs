//! Records of the live heap taken between runs of the code under check, and
//! what each run left alive.
//!
//! Objects are told apart by allocation serial (patch 0011), never by
//! address: an object made in run `k` has a serial between the last serials
//! of records `k - 1` and `k`, whatever address it was given.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use pyo3::Borrowed;

use crate::objects::{
    for_each_traced, kept_by_deallocs, last_serial, owned_blocks, refcount, serial_of,
    unreleased_type_refs, UnreleasedTypeRefs,
};

extern "C" {
    /// The traceback of the block at `ptr` in `domain` (0: Python's
    /// allocators), None if tracemalloc traces none there. Internal to
    /// CPython 3.13 (`pycore_tracemalloc.h`), and exported by the
    /// interpreter, which links with `-export-dynamic`.
    pub fn _PyTraceMalloc_GetTraceback(
        domain: std::os::raw::c_uint,
        ptr: usize,
    ) -> *mut pyo3::ffi::PyObject;
}

/// tracemalloc's live blocks grouped by their traceback below the harness:
/// (blocks, bytes) by traceback key.
type Traces = HashMap<u64, (isize, isize)>;

/// The live heap at one moment, as counters.
struct Record {
    /// The last allocation serial given before the record.
    last_serial: u64,
    objects: isize,
    /// The sum of the reference counts of every mortal object, less the
    /// references to types that their dead instances' deallocs kept.
    references: isize,
    /// Those references, by type id (patch 0019).
    unreleased_type_refs: UnreleasedTypeRefs,
    allocated_blocks: isize,
    /// Open file descriptors, sorted, each with what it points at.
    descriptors: Vec<(i32, String)>,
    /// tracemalloc's live blocks grouped by their traceback below the harness: (blocks, bytes).
    traces: Traces,
}

/// An object alive at the first record whose reference count rose in every
/// run so far.
struct Growing {
    serial: u64,
    id: usize,
    /// Its reference count at each record.
    counts: Vec<isize>,
}

/// Records of the live heap between runs of the code under check.
///
/// Everything is kept in Rust, so recording creates no Python object that
/// outlives the call, and the checker never measures itself.
#[pyclass(module = "check_leaks._shim")]
pub struct Snapshots {
    // Looked up once: a lookup during `record` could create objects (an
    // interned name, say) that would then count as made by the run.
    getallocatedblocks: Py<PyAny>,
    get_traces: Py<PyAny>,
    /// Filename prefixes of the code that runs the checked code.
    harness: Vec<String>,
    records: Vec<Record>,
    growing: Vec<Growing>,
}

#[pymethods]
impl Snapshots {
    #[new]
    #[pyo3(signature = (harness = Vec::new()), text_signature = "(harness=())")]
    fn new(py: Python<'_>, harness: Vec<String>) -> PyResult<Self> {
        Ok(Snapshots {
            getallocatedblocks: py.import("sys")?.getattr("getallocatedblocks")?.unbind(),
            get_traces: py.import("_tracemalloc")?.getattr("_get_traces")?.unbind(),
            harness,
            records: Vec::new(),
            growing: Vec::new(),
        })
    }

    /// Record the counters of the live heap, and the reference count of every
    /// object that has grown in every run so far.
    fn record(&mut self, py: Python<'_>) -> PyResult<()> {
        // First what makes Python objects, which are gone again before the
        // objects are counted.
        let traces = self.traces(py)?;
        let allocated_blocks = self.getallocatedblocks.bind(py).call0()?.extract()?;
        let descriptors = open_descriptors();

        let unreleased_type_refs = unreleased_type_refs(py);
        let first = self.records.first().map(|record| record.last_serial);
        let mut objects = 0;
        let mut references = 0;
        let mut seen = Vec::new();
        for_each_traced(py, |object, serial| {
            objects += 1;
            // SAFETY: the object is alive while the table is walked.
            let Some(count) = refcount(unsafe { Borrowed::from_ptr(py, object) }) else {
                return;
            };
            let count = count - kept_by_deallocs(object, &unreleased_type_refs);
            references += count;
            if first.is_none_or(|first| serial <= first) {
                seen.push((serial, object as usize, count));
            }
        });
        seen.sort_unstable();
        track_growth(&mut self.growing, self.records.is_empty(), seen);
        self.records.push(Record {
            last_serial: last_serial(py),
            objects,
            references,
            unreleased_type_refs,
            allocated_blocks,
            descriptors,
            traces,
        });
        Ok(())
    }

    fn __len__(&self) -> usize {
        self.records.len()
    }

    /// For each run (each record but the first), the ids of the objects it
    /// made that are still alive.
    fn survivors(&self, py: Python<'_>) -> Vec<Vec<usize>> {
        let bounds: Vec<u64> = self.records.iter().map(|r| r.last_serial).collect();
        let mut runs = vec![Vec::new(); bounds.len().saturating_sub(1)];
        for_each_traced(py, |object, serial| {
            if let Some(run) = run_of(&bounds, serial) {
                runs[run].push(object as usize);
            }
        });
        for ids in &mut runs {
            ids.sort_unstable();
        }
        runs
    }

    /// The objects alive at the first record whose reference count rose in
    /// every run and that are still the same objects now, as
    /// (id, per-run rise).
    fn growing_references(&self, py: Python<'_>) -> Vec<(usize, Vec<isize>)> {
        if self.records.len() < 2 {
            return Vec::new();
        }
        self.growing
            .iter()
            .filter(|object| serial_of(py, object.id) == object.serial)
            .map(|object| {
                let rises = object.counts.windows(2).map(|w| w[1] - w[0]).collect();
                (object.id, rises)
            })
            .collect()
    }

    /// The heap types whose dead instances' deallocs kept more references to
    /// them in the runs (patch 0019), as (id, per-run rise). Those are not
    /// counted in the reference counts above.
    fn unreleased_type_refs(&self, py: Python<'_>) -> Vec<(usize, Vec<isize>)> {
        let Some(last) = self.records.last() else {
            return Vec::new();
        };
        let mut found: Vec<_> = (last.unreleased_type_refs.keys())
            .filter(|&&id| serial_of(py, id) != 0)
            .map(|&id| {
                let at = |record: &Record| *record.unreleased_type_refs.get(&id).unwrap_or(&0);
                let rises: Vec<isize> = (self.records.windows(2))
                    .map(|w| at(&w[1]) - at(&w[0]))
                    .collect();
                (id, rises)
            })
            .filter(|(_, rises)| rises.iter().sum::<isize>() > 0)
            .collect();
        found.sort_unstable();
        found
    }

    /// tracemalloc's live blocks that live objects own (`owned_blocks`),
    /// counted by traceback key: a dict's key table, resized at a later
    /// line than the one that made the dict, is the dict's memory.
    fn owned_traces(&self, py: Python<'_>) -> PyResult<HashMap<u64, isize>> {
        let mut blocks = Vec::new();
        for_each_traced(py, |object, _| {
            blocks.extend(owned_blocks(object).into_iter().filter(|&block| block != 0));
        });
        let mut counts = HashMap::new();
        for block in blocks {
            // SAFETY: the token proves the GIL; the address is only looked
            // up (a block freed meanwhile is simply not found).
            let traceback = unsafe { _PyTraceMalloc_GetTraceback(0, block) };
            // SAFETY: a new reference, or NULL with an exception set.
            let traceback = unsafe { Bound::from_owned_ptr_or_err(py, traceback) }?;
            if !traceback.is_none() {
                *counts
                    .entry(key_of(&traceback, &self.harness)?)
                    .or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    /// tracemalloc's live blocks now with each of `keys` (from
    /// `growing_traces`): what a confirmation follows, run after run.
    fn trace_counts(&self, py: Python<'_>, keys: Vec<u64>) -> PyResult<Vec<isize>> {
        let traces = self.traces(py)?;
        Ok(keys
            .iter()
            .map(|key| traces.get(key).map_or(0, |entry| entry.0))
            .collect())
    }

    /// tracemalloc's blocks whose count rose in every run, grouped by
    /// traceback key, as (key, per-run blocks, per-run bytes): candidates
    /// for `trace_counts` to follow.
    fn growing_traces(&self) -> Vec<(u64, Vec<isize>, Vec<isize>)> {
        growing_traces(&self.records)
    }

    /// For each of `keys`, one traceback of a live traced block with that
    /// key, as tracemalloc gives it (most recent frame first).
    fn tracebacks<'py>(
        &self,
        py: Python<'py>,
        keys: Vec<u64>,
    ) -> PyResult<HashMap<u64, Bound<'py, PyAny>>> {
        let mut wanted: std::collections::HashSet<u64> = keys.into_iter().collect();
        let mut found = HashMap::new();
        if wanted.is_empty() {
            return Ok(found);
        }
        for trace in self.get_traces.bind(py).call0()?.try_iter()? {
            // (domain, size, traceback, total_nframe)
            let traceback = trace?.cast_into::<PyTuple>()?.get_item(2)?;
            let key = key_of(&traceback, &self.harness)?;
            if wanted.remove(&key) {
                found.insert(key, traceback);
                if wanted.is_empty() {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// The descriptors opened in each run and still open, with what they
    /// point at.
    fn new_descriptors(&self) -> Vec<Vec<(i32, String)>> {
        new_descriptors(&self.records)
    }

    /// How many more live objects there were after each run than before it.
    fn object_deltas(&self) -> Vec<isize> {
        self.deltas(|record| record.objects)
    }

    /// How much each run changed the sum of the reference counts of every
    /// mortal object.
    fn refcount_deltas(&self) -> Vec<isize> {
        self.deltas(|record| record.references)
    }

    /// How much each run changed `sys.getallocatedblocks()`.
    fn block_deltas(&self) -> Vec<isize> {
        self.deltas(|record| record.allocated_blocks)
    }

    /// How much each run changed the number of open file descriptors.
    fn descriptor_deltas(&self) -> Vec<isize> {
        self.deltas(|record| record.descriptors.len() as isize)
    }
}

impl Snapshots {
    fn deltas(&self, value: impl Fn(&Record) -> isize) -> Vec<isize> {
        self.records
            .windows(2)
            .map(|pair| value(&pair[1]) - value(&pair[0]))
            .collect()
    }

    /// tracemalloc's live blocks by traceback key; empty when it is off.
    fn traces(&self, py: Python<'_>) -> PyResult<Traces> {
        let mut traces = HashMap::new();
        for trace in self.get_traces.bind(py).call0()?.try_iter()? {
            // (domain, size, traceback, total_nframe)
            let trace = trace?.cast_into::<PyTuple>()?;
            let size: isize = trace.get_item(1)?.extract()?;
            let key = key_of(&trace.get_item(2)?, &self.harness)?;
            let entry = traces.entry(key).or_insert((0, 0));
            entry.0 += 1;
            entry.1 += size;
        }
        Ok(traces)
    }
}

/// The run that made an object of allocation serial `serial`, given the
/// last serial before each record so far (`bounds`, ascending): run `k`,
/// between records `k` and `k + 1` and numbered from 0, made the serials in
/// `bounds[k] + 1..=bounds[k + 1]`. `None` for an object older than the
/// first record or newer than the last.
pub fn run_of(bounds: &[u64], serial: u64) -> Option<usize> {
    let run = bounds.partition_point(|&bound| bound < serial);
    (run >= 1 && run < bounds.len()).then(|| run - 1)
}

/// Keeps, of the objects alive at the first record, those whose count
/// rose again; `seen` is (serial, id, count) of the old objects now,
/// sorted. The first record (`first`) keeps them all.
fn track_growth(growing: &mut Vec<Growing>, first: bool, seen: Vec<(u64, usize, isize)>) {
    if first {
        *growing = seen
            .into_iter()
            .map(|(serial, id, count)| Growing {
                serial,
                id,
                counts: vec![count],
            })
            .collect();
        return;
    }
    let mut now = seen.iter().peekable();
    growing.retain_mut(|object| {
        while now.next_if(|entry| entry.0 < object.serial).is_some() {}
        match now.peek() {
            Some(&&(serial, _, count))
                if serial == object.serial && count > *object.counts.last().unwrap() =>
            {
                object.counts.push(count);
                true
            }
            _ => false,
        }
    });
}

/// `Snapshots::growing_traces` of `records`.
fn growing_traces(records: &[Record]) -> Vec<(u64, Vec<isize>, Vec<isize>)> {
    let Some(last) = records.last() else {
        return Vec::new();
    };
    let mut grown: Vec<_> = last
        .traces
        .keys()
        .filter_map(|&hash| {
            let of = |record: &Record| record.traces.get(&hash).copied().unwrap_or((0, 0));
            let (blocks, bytes): (Vec<isize>, Vec<isize>) = records
                .windows(2)
                .map(|pair| {
                    let (before, after) = (of(&pair[0]), of(&pair[1]));
                    (after.0 - before.0, after.1 - before.1)
                })
                .unzip();
            blocks
                .iter()
                .all(|&d| d > 0)
                .then_some((hash, blocks, bytes))
        })
        .collect();
    grown.sort_unstable();
    grown
}

/// `Snapshots::new_descriptors` of `records`.
fn new_descriptors(records: &[Record]) -> Vec<Vec<(i32, String)>> {
    let Some(last) = records.last() else {
        return Vec::new();
    };
    records
        .windows(2)
        .map(|pair| {
            pair[1]
                .descriptors
                .iter()
                .filter(|fd| !pair[0].descriptors.contains(fd) && last.descriptors.contains(fd))
                .cloned()
                .collect()
        })
        .collect()
}

/// A key for a tracemalloc traceback (most recent frame first) that leaves
/// out the frames from the first one whose file starts with a prefix in
/// `harness` on: the same for a block allocated by a warm-up and by a
/// measured run, which reach the checked code through different lines.
fn key_of(traceback: &Bound<'_, PyAny>, harness: &[String]) -> PyResult<u64> {
    let mut hasher = DefaultHasher::new();
    for frame in traceback.try_iter()? {
        let frame = frame?;
        let filename = frame.get_item(0)?;
        let name = filename.cast::<PyString>()?.to_cow()?;
        if harness
            .iter()
            .any(|prefix| name.starts_with(prefix.as_str()))
        {
            break;
        }
        name.hash(&mut hasher);
        frame.get_item(1)?.extract::<i64>()?.hash(&mut hasher);
    }
    Ok(hasher.finish())
}

/// Every open file descriptor but the one that lists them, sorted, with the
/// target of its `/proc/self/fd` link. Empty where there is no `/proc`.
/// Each link is read into a buffer on the stack: a `String` grown and then
/// shrunk on the heap leaves glibc's caches a little different each time,
/// which the native count (see `native`) would see.
pub fn open_descriptors() -> Vec<(i32, String)> {
    let listing = format!("/proc/{}/fd", std::process::id());
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut fds: Vec<(i32, String)> = entries
        .filter_map(|entry| {
            let fd = entry.ok()?.file_name().to_str()?.parse().ok()?;
            Some((fd, link_of(fd)?))
        })
        .filter(|(_, target)| *target != listing)
        .collect();
    fds.sort_unstable();
    fds
}

/// What descriptor `fd` points at, from its `/proc/self/fd` link.
fn link_of(fd: i32) -> Option<String> {
    let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).ok()?;
    let mut buffer = [0u8; 4096];
    // SAFETY: `path` is a C string and the buffer's length is passed.
    let length = unsafe { libc::readlink(path.as_ptr(), buffer.as_mut_ptr().cast(), buffer.len()) };
    let length = usize::try_from(length).ok()?;
    Some(String::from_utf8_lossy(&buffer[..length]).into_owned())
}

/// The lowest descriptor number not open: the one the next `open`,
/// `socket`, `pipe` or `dup` takes. One `fcntl` per open descriptor below
/// it, cheap enough to ask after every call into C while the line that
/// opens a leaked descriptor is looked for.
#[pyfunction]
pub fn first_free_descriptor() -> i32 {
    (0..)
        // SAFETY: F_GETFD only reads the flags of a descriptor, open or not.
        .find(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1)
        .expect("a process has a free descriptor below i32::MAX")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(last_serial: u64) -> Record {
        Record {
            last_serial,
            objects: 0,
            references: 0,
            unreleased_type_refs: UnreleasedTypeRefs::new(),
            allocated_blocks: 0,
            descriptors: Vec::new(),
            traces: Traces::new(),
        }
    }

    fn with_traces(traces: &[(u64, (isize, isize))]) -> Record {
        Record {
            traces: traces.iter().copied().collect(),
            ..record(0)
        }
    }

    fn with_descriptors(descriptors: &[(i32, &str)]) -> Record {
        Record {
            descriptors: descriptors
                .iter()
                .map(|&(fd, target)| (fd, target.to_owned()))
                .collect(),
            ..record(0)
        }
    }

    /// (serial, counts) of each object still tracked as growing.
    fn tracked(growing: &[Growing]) -> Vec<(u64, Vec<isize>)> {
        growing
            .iter()
            .map(|object| (object.serial, object.counts.clone()))
            .collect()
    }

    #[test]
    fn each_run_made_the_serials_up_to_its_record() {
        // Records after serials 10, 20, 20 and 35: run 1 made nothing.
        let bounds = [10, 20, 20, 35];
        assert_eq!(run_of(&bounds, 1), None);
        assert_eq!(run_of(&bounds, 10), None);
        assert_eq!(run_of(&bounds, 11), Some(0));
        assert_eq!(run_of(&bounds, 20), Some(0));
        assert_eq!(run_of(&bounds, 21), Some(2));
        assert_eq!(run_of(&bounds, 35), Some(2));
        assert_eq!(run_of(&bounds, 36), None);
        // Everywhere: run k made exactly the serials in (bounds[k], bounds[k + 1]].
        for serial in 0..=40 {
            let made_by = (0..bounds.len() - 1)
                .find(|&run| bounds[run] < serial && serial <= bounds[run + 1]);
            assert_eq!(run_of(&bounds, serial), made_by, "serial {serial}");
        }
    }

    #[test]
    fn no_run_before_two_records() {
        for serial in [0, 5, 6, u64::MAX] {
            assert_eq!(run_of(&[], serial), None);
            assert_eq!(run_of(&[5], serial), None);
        }
    }

    #[test]
    fn growth_is_tracked_while_the_count_rises_at_every_record() {
        let mut growing = Vec::new();
        // (serial, id, count), sorted.
        track_growth(
            &mut growing,
            true,
            vec![
                (1, 0x10, 2),
                (3, 0x30, 5),
                (4, 0x40, 1),
                (6, 0x60, 4),
                (7, 0x70, 3),
            ],
        );
        assert_eq!(growing.len(), 5);
        // 1 and 7 rose; 3 stayed, 6 fell and 4 was freed.
        track_growth(
            &mut growing,
            false,
            vec![(1, 0x10, 3), (3, 0x30, 5), (6, 0x60, 3), (7, 0x70, 4)],
        );
        assert_eq!(tracked(&growing), [(1, vec![2, 3]), (7, vec![3, 4])]);
        // 1 stayed the same; 3 rises now, but was dropped for good.
        track_growth(
            &mut growing,
            false,
            vec![(1, 0x10, 3), (3, 0x30, 9), (7, 0x70, 6)],
        );
        assert_eq!(tracked(&growing), [(7, vec![3, 4, 6])]);
        assert_eq!(growing[0].id, 0x70);
    }

    #[test]
    fn growth_is_matched_by_serial_across_gaps() {
        let mut growing = Vec::new();
        track_growth(&mut growing, true, vec![(2, 0, 1), (5, 0, 1), (9, 0, 1)]);
        // Old objects that are not tracked lie before, between and after.
        let seen = (1..=10).map(|serial| (serial, 0, 2)).collect();
        track_growth(&mut growing, false, seen);
        assert_eq!(
            tracked(&growing),
            [(2, vec![1, 2]), (5, vec![1, 2]), (9, vec![1, 2])]
        );
        // What is seen ends early: 9 is gone.
        track_growth(&mut growing, false, vec![(2, 0, 3), (5, 0, 3)]);
        assert_eq!(tracked(&growing), [(2, vec![1, 2, 3]), (5, vec![1, 2, 3])]);
    }

    #[test]
    fn the_first_record_tracks_every_object_it_sees() {
        let mut growing = Vec::new();
        track_growth(&mut growing, true, vec![(1, 0, 1)]);
        track_growth(&mut growing, true, vec![(2, 0, 7), (4, 0, 1)]);
        assert_eq!(tracked(&growing), [(2, vec![7]), (4, vec![1])]);
    }

    #[test]
    fn traces_grow_when_their_blocks_rose_in_every_run() {
        // key: (blocks, bytes)
        let records = [
            with_traces(&[(5, (1, 10)), (2, (5, 50)), (3, (2, 20))]),
            with_traces(&[(5, (2, 30)), (2, (6, 60)), (3, (2, 20)), (4, (1, 8))]),
            with_traces(&[(5, (4, 40)), (2, (7, 55)), (4, (2, 16)), (1, (1, 1))]),
        ];
        // 2 shrank in bytes but not in blocks; 3 did not grow in the last
        // run and is gone; 4 was made in the first run; 1 only in the last.
        assert_eq!(
            growing_traces(&records),
            [
                (2, vec![1, 1], vec![10, -5]),
                (4, vec![1, 1], vec![8, 8]),
                (5, vec![1, 2], vec![20, 10]),
            ]
        );
        assert!(growing_traces(&[]).is_empty());
    }

    #[test]
    fn new_descriptors_are_those_a_run_opened_and_still_open() {
        let records = [
            with_descriptors(&[(3, "/dev/null")]),
            with_descriptors(&[(3, "/dev/null"), (4, "/tmp/a"), (5, "/tmp/b")]),
            // 5 was closed and opened again on another file.
            with_descriptors(&[
                (3, "/dev/null"),
                (4, "/tmp/a"),
                (5, "/tmp/c"),
                (6, "/tmp/d"),
            ]),
        ];
        let own = |fds: &[(i32, &str)]| -> Vec<(i32, String)> {
            fds.iter()
                .map(|&(fd, path)| (fd, path.to_owned()))
                .collect()
        };
        assert_eq!(
            new_descriptors(&records),
            [own(&[(4, "/tmp/a")]), own(&[(5, "/tmp/c"), (6, "/tmp/d")])]
        );
        assert!(new_descriptors(&records[..1]).is_empty());
        assert!(new_descriptors(&[]).is_empty());
    }
}
