//! The monitor's checkpoints: what a long-running program has made since the
//! monitor began and still holds, counted by type (and by allocation site for
//! the types asked for) at each checkpoint.
//!
//! An object is told to be new by its allocation serial (patch 0011): above
//! the serial at the monitor's start. Only counters are kept, never an
//! object, so a checkpoint leaves nothing behind for the next one to count,
//! and the monitor's own memory stays flat however long the program runs:
//! past `MAX_POINTS` checkpoints, every other one is dropped.

use std::collections::{HashMap, HashSet};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};

use crate::native::native_bytes;
use crate::objects::{for_each_traced, last_serial, owned_blocks, serial_of};
use crate::snapshot::{_PyTraceMalloc_GetTraceback, open_descriptors};

/// Checkpoints kept at most; past it every other one is dropped, so a
/// program watched for weeks costs what one watched for hours does.
const MAX_POINTS: usize = 256;

/// A type, told apart from a later type at the same address by its serial
/// (0 for a static type, which is never freed).
type TypeKey = (usize, u64);

/// An allocation site, the innermost frame of the traceback, by its index
/// in `Checkpoints::site_names`; `NO_SITE` where tracemalloc had none.
type SiteId = u32;
const NO_SITE: SiteId = SiteId::MAX;

/// A group: objects of one type made at one site.
type Site = (TypeKey, SiteId);

/// One counter's values, one per checkpoint kept.
#[derive(Default, Clone)]
struct Series {
    objects: Vec<u64>,
    bytes: Vec<u64>,
}

impl Series {
    fn zeros(points: usize) -> Self {
        Series {
            objects: vec![0; points],
            bytes: vec![0; points],
        }
    }

    fn push(&mut self, (objects, bytes): (u64, u64)) {
        self.objects.push(objects);
        self.bytes.push(bytes);
    }

    fn rises(&self) -> usize {
        self.objects.windows(2).filter(|w| w[1] > w[0]).count()
    }

    fn thin(&mut self) {
        for values in [&mut self.objects, &mut self.bytes] {
            *values = values.iter().copied().step_by(2).collect();
        }
    }
}

/// Counters of the live heap at each checkpoint.
#[pyclass(module = "check_leaks._shim")]
pub struct Checkpoints {
    /// The last serial given when the monitor began.
    baseline: u64,
    /// The last serial given at each checkpoint kept.
    serials: Vec<u64>,
    /// The number of each checkpoint kept (the start is 0).
    numbers: Vec<u64>,
    /// The caller's units (requests, tasks) done by each checkpoint kept.
    units: Vec<f64>,
    /// Seconds since the start at each checkpoint kept.
    seconds: Vec<f64>,
    start: std::time::Instant,
    /// New objects still alive, by type.
    types: HashMap<TypeKey, Series>,
    /// New objects still alive by site, for the watched types only, from
    /// checkpoint `sites_from` on.
    sites: HashMap<Site, Series>,
    sites_from: Option<usize>,
    /// The watched types, held so that none is freed and its address given
    /// to another type meanwhile, each with the index of the first
    /// checkpoint that counted it by site.
    watched: Vec<(Py<PyType>, usize)>,
    /// The site of each new object of a watched type, by (address, serial):
    /// a traceback is looked up once per object.
    known_sites: HashMap<(usize, u64), SiteId>,
    /// Each site's file and line, and its index there.
    site_names: Vec<(String, u32)>,
    site_ids: HashMap<(String, u32), SiteId>,
    /// Every live object, the new ones among them, their bytes, the open
    /// descriptors and the resident set, at each checkpoint.
    totals: Vec<[u64; 6]>,
}

#[pymethods]
impl Checkpoints {
    /// Begin: only objects made from now on are counted. The start is
    /// checkpoint 0, with 0 units done and nothing new.
    #[new]
    fn new(py: Python<'_>) -> Self {
        let baseline = last_serial(py);
        let mut everything = 0;
        for_each_traced(py, |_, _| everything += 1);
        Checkpoints {
            baseline,
            serials: vec![baseline],
            numbers: vec![0],
            units: vec![0.0],
            seconds: vec![0.0],
            start: std::time::Instant::now(),
            types: HashMap::new(),
            sites: HashMap::new(),
            sites_from: None,
            watched: Vec::new(),
            known_sites: HashMap::new(),
            site_names: Vec::new(),
            site_ids: HashMap::new(),
            totals: vec![[
                everything,
                0,
                0,
                open_descriptors().len() as u64,
                resident_bytes(),
                native(),
            ]],
        }
    }

    /// Count the new objects still alive, after `units` units in all; with
    /// `sites`, count the watched types' by allocation site as well
    /// (tracemalloc must be tracing, or none has a site).
    #[pyo3(signature = (units, sites = false))]
    fn checkpoint(&mut self, py: Python<'_>, units: f64, sites: bool) -> PyResult<()> {
        let watched: HashSet<usize> = (self.watched.iter())
            .map(|(kind, _)| kind.as_ptr() as usize)
            .collect();
        let mut by_address: HashMap<usize, (u64, u64)> = HashMap::new();
        let mut to_site = Vec::new();
        let (mut everything, mut new, mut new_bytes) = (0, 0, 0);
        for_each_traced(py, |object, serial| {
            everything += 1;
            if serial <= self.baseline {
                return;
            }
            // SAFETY: the table lists live objects, and nothing runs during the walk.
            let kind = unsafe { ffi::Py_TYPE(object) } as usize;
            // SAFETY: as above; a type outlives its instances.
            let bytes = unsafe { own_bytes(object) };
            let entry = by_address.entry(kind).or_default();
            entry.0 += 1;
            entry.1 += bytes;
            new += 1;
            new_bytes += bytes;
            if sites && watched.contains(&kind) {
                to_site.push((object as usize, serial, kind, bytes));
            }
        });
        // A type's serial is looked up once, not once per instance.
        let by_type = (by_address.into_iter())
            .map(|(kind, counts)| ((kind, serial_of(py, kind)), counts))
            .collect();
        let by_site = if sites {
            self.count_sites(py, &to_site)?
        } else {
            HashMap::new()
        };
        if sites && self.sites_from.is_none() {
            self.sites_from = Some(self.serials.len());
        }
        let points = self.serials.len();
        push_all(&mut self.types, by_type, points);
        // Once begun, every checkpoint has a count by site, if only of none.
        if self.sites_from.is_some() {
            push_all(&mut self.sites, by_site, points);
        }
        self.serials.push(last_serial(py));
        self.numbers.push(self.numbers.last().map_or(0, |n| n + 1));
        self.units.push(units);
        self.seconds.push(self.start.elapsed().as_secs_f64());
        let descriptors = open_descriptors().len() as u64;
        self.totals.push([
            everything,
            new,
            new_bytes,
            descriptors,
            resident_bytes(),
            native(),
        ]);
        if self.serials.len() > MAX_POINTS {
            self.thin();
        }
        Ok(())
    }

    /// Count the instances of `types` by allocation site from the next
    /// checkpoint made with `sites` on.
    fn watch(&mut self, types: Vec<Bound<'_, PyType>>) {
        for kind in types {
            if !self
                .watched
                .iter()
                .any(|(known, _)| known.as_ptr() == kind.as_ptr())
            {
                // Counted by site from the next checkpoint on.
                self.watched.push((kind.unbind(), self.serials.len()));
            }
        }
    }

    fn __len__(&self) -> usize {
        self.serials.len()
    }

    /// The number of each checkpoint kept: past `MAX_POINTS`, every other
    /// one is dropped.
    #[getter]
    fn numbers(&self) -> Vec<u64> {
        self.numbers.clone()
    }

    /// The units done by each checkpoint kept.
    #[getter]
    fn units(&self) -> Vec<f64> {
        self.units.clone()
    }

    /// Seconds since the start at each checkpoint kept.
    #[getter]
    fn seconds(&self) -> Vec<f64> {
        self.seconds.clone()
    }

    /// The index of the first checkpoint kept that counted sites, if any did.
    #[getter]
    fn sites_from(&self) -> Option<usize> {
        self.sites_from
    }

    /// (type, new objects alive at each checkpoint, their bytes) of each
    /// live type whose count rose at `rises` checkpoints or more.
    fn types<'py>(
        &self,
        py: Python<'py>,
        rises: usize,
    ) -> Vec<(Bound<'py, PyType>, Vec<u64>, Vec<u64>)> {
        (self.types.iter())
            .filter(|(_, series)| series.rises() >= rises)
            .filter_map(|(&key, series)| {
                let kind = live_type(py, key)?;
                Some((kind, series.objects.clone(), series.bytes.clone()))
            })
            .collect()
    }

    /// Like `types`, but only the types not watched yet whose count rose
    /// at the last checkpoint: those a checkpoint may newly find growing.
    fn rising<'py>(
        &self,
        py: Python<'py>,
        rises: usize,
    ) -> Vec<(Bound<'py, PyType>, Vec<u64>, Vec<u64>)> {
        let watched: HashSet<usize> = (self.watched.iter())
            .map(|(kind, _)| kind.as_ptr() as usize)
            .collect();
        (self.types.iter())
            .filter(|((address, _), series)| {
                let last = &series.objects[series.objects.len().saturating_sub(2)..];
                !watched.contains(address) && last.len() == 2 && last[1] > last[0]
            })
            .filter(|(_, series)| series.rises() >= rises)
            .filter_map(|(&key, series)| {
                let kind = live_type(py, key)?;
                Some((kind, series.objects.clone(), series.bytes.clone()))
            })
            .collect()
    }

    /// (type, file, line, index, new objects alive at each checkpoint from
    /// the one at `index` on, their bytes) of each site of a watched type
    /// whose count rose at `rises` checkpoints or more. `index` is the
    /// first checkpoint kept that counted its type by site.
    #[allow(clippy::type_complexity)]
    fn sites<'py>(
        &self,
        py: Python<'py>,
        rises: usize,
    ) -> Vec<(Bound<'py, PyType>, String, u32, usize, Vec<u64>, Vec<u64>)> {
        let begun = self.sites_from.unwrap_or(self.serials.len());
        let from: HashMap<usize, usize> = (self.watched.iter())
            .map(|(kind, from)| (kind.as_ptr() as usize, begun.max(*from)))
            .collect();
        (self.sites.iter())
            .filter(|(_, series)| series.rises() >= rises)
            .filter_map(|(&(key, site), series)| {
                let kind = live_type(py, key)?;
                let (file, line) = self.site_names.get(site as usize)?;
                let from = (*from.get(&key.0)?).min(series.objects.len() - 1);
                let objects = series.objects[from..].to_vec();
                let bytes = series.bytes[from..].to_vec();
                Some((kind, file.clone(), *line, from, objects, bytes))
            })
            .collect()
    }

    /// (id, epoch) of each live object of exactly `kind` made since the
    /// start, and allocated at `site` (file, line) if one is given (see
    /// `epochs`). A site is as the last checkpoint found it, or looked up
    /// now for an object made since.
    #[pyo3(signature = (kind, site = None))]
    fn members(
        &self,
        py: Python<'_>,
        kind: Bound<'_, PyType>,
        site: Option<(String, u32)>,
    ) -> PyResult<Vec<(usize, u64)>> {
        let wanted = kind.as_ptr() as usize;
        let mut found = Vec::new();
        for_each_traced(py, |object, serial| {
            // SAFETY: the table lists live objects, and nothing runs during the walk.
            if serial > self.baseline && unsafe { ffi::Py_TYPE(object) } as usize == wanted {
                found.push((object as usize, serial));
            }
        });
        let _paused = GcPaused::new();
        let mut members = Vec::with_capacity(found.len());
        for (object, serial) in found {
            if let Some(site) = &site {
                let known = match self.known_sites.get(&(object, serial)) {
                    Some(&id) => self.site_names.get(id as usize).cloned(),
                    None => site_of(py, object as *mut ffi::PyObject)?,
                };
                if known.as_ref() != Some(site) {
                    continue;
                }
            }
            members.push((object, self.epoch_of(serial)));
        }
        Ok(members)
    }

    /// For each checkpoint kept: every live object, the new ones, their
    /// bytes, the open descriptors, the resident set in bytes and the
    /// native bytes.
    fn totals(&self) -> Vec<[u64; 6]> {
        self.totals.clone()
    }

    /// For each of `ids`, the epoch it was made in: the number of the first
    /// checkpoint after it was made (one more than the last checkpoint's if
    /// none was), or 0 if it is older than the monitor.
    fn epochs(&self, py: Python<'_>, ids: Vec<usize>) -> Vec<u64> {
        ids.into_iter()
            .map(|id| self.epoch_of(serial_of(py, id)))
            .collect()
    }
}

impl Checkpoints {
    /// Counts by site of the objects of `found`: (address, serial, type, bytes).
    fn count_sites(
        &mut self,
        py: Python<'_>,
        found: &[(usize, u64, usize, u64)],
    ) -> PyResult<HashMap<Site, (u64, u64)>> {
        // Looking a traceback up makes Python objects; a collection
        // meanwhile could free an object still to be looked up.
        let _paused = GcPaused::new();
        let mut known = HashMap::with_capacity(found.len());
        let mut counts: HashMap<(usize, SiteId), (u64, u64)> = HashMap::new();
        for &(object, serial, kind, bytes) in found {
            let site = match self.known_sites.remove(&(object, serial)) {
                Some(site) => site,
                None => match site_of(py, object as *mut ffi::PyObject)? {
                    Some(name) => self.intern(name),
                    None => NO_SITE,
                },
            };
            if site != NO_SITE {
                let entry = counts.entry((kind, site)).or_default();
                entry.0 += 1;
                entry.1 += bytes;
            }
            known.insert((object, serial), site);
        }
        // A type's serial is looked up once, not once per instance.
        let counts = (counts.into_iter())
            .map(|((kind, site), n)| (((kind, serial_of(py, kind)), site), n))
            .collect();
        // Only the live ones: the map stays as large as what is alive.
        self.known_sites = known;
        Ok(counts)
    }

    /// The epoch an object with `serial` was made in (see `epochs`).
    fn epoch_of(&self, serial: u64) -> u64 {
        if serial <= self.baseline {
            return 0;
        }
        let kept = self.serials.partition_point(|&bound| bound < serial);
        let next = self.numbers.last().map_or(1, |n| n + 1);
        self.numbers.get(kept).copied().unwrap_or(next)
    }

    fn intern(&mut self, name: (String, u32)) -> SiteId {
        if let Some(&id) = self.site_ids.get(&name) {
            return id;
        }
        let id = self.site_names.len() as SiteId;
        self.site_names.push(name.clone());
        self.site_ids.insert(name, id);
        id
    }

    fn thin(&mut self) {
        for values in [&mut self.serials, &mut self.numbers] {
            *values = values.iter().copied().step_by(2).collect();
        }
        for values in [&mut self.units, &mut self.seconds] {
            *values = values.iter().copied().step_by(2).collect();
        }
        self.totals = self.totals.iter().copied().step_by(2).collect();
        for series in self.types.values_mut().chain(self.sites.values_mut()) {
            series.thin();
        }
        // The first kept at or after each, which is even.
        self.sites_from = self.sites_from.map(|from| from.div_ceil(2));
        for (_, from) in &mut self.watched {
            *from = from.div_ceil(2);
        }
    }
}

/// Appends this checkpoint's counts to every series: 0 for those with
/// nothing alive now, a new series (0 before) for those new.
fn push_all<K: std::hash::Hash + Eq>(
    all: &mut HashMap<K, Series>,
    mut now: HashMap<K, (u64, u64)>,
    points: usize,
) {
    for (key, series) in all.iter_mut() {
        series.push(now.remove(key).unwrap_or((0, 0)));
    }
    for (key, counts) in now {
        let mut series = Series::zeros(points);
        series.push(counts);
        all.insert(key, series);
    }
    // A series that has been 0 for long is of a type that is gone.
    all.retain(|_, series| {
        series
            .objects
            .iter()
            .rev()
            .take(MAX_POINTS / 4)
            .any(|&n| n > 0)
    });
}

/// The type at `key`, if that very type is still alive.
fn live_type(py: Python<'_>, (address, serial): TypeKey) -> Option<Bound<'_, PyType>> {
    if serial_of(py, address) != serial {
        return None;
    }
    // SAFETY: the address is a live object (its serial is the type's, or a
    // static type's 0), borrowed under the GIL.
    let object = unsafe { Bound::from_borrowed_ptr(py, address as *mut ffi::PyObject) };
    object.cast_into::<PyType>().ok()
}

/// The innermost frame of the traceback tracemalloc keeps for `object`.
fn site_of(py: Python<'_>, object: *mut ffi::PyObject) -> PyResult<Option<(String, u32)>> {
    // SAFETY: the object is alive (the collector is paused), and its block
    // is only looked up.
    let traceback = unsafe { _PyTraceMalloc_GetTraceback(0, block_of(object) as usize) };
    // SAFETY: a new reference, or NULL with an exception set.
    let traceback = unsafe { Bound::from_owned_ptr_or_err(py, traceback) }?;
    let Ok(frames) = traceback.cast_into::<PyTuple>() else {
        return Ok(None);
    };
    let Ok(frame) = frames.get_item(0) else {
        return Ok(None);
    };
    let (file, line): (String, u32) = frame.extract()?;
    Ok(Some((file, line)))
}

/// Where the memory block of `object` begins: before it, a gc header and
/// the managed dict and weakref pointers, where its type has them.
///
/// # Safety
/// `object` must be a live object.
unsafe fn block_of(object: *mut ffi::PyObject) -> *const u8 {
    // Py_TPFLAGS_PREHEADER: Py_TPFLAGS_MANAGED_WEAKREF | Py_TPFLAGS_MANAGED_DICT.
    const PREHEADER: std::os::raw::c_ulong = (1 << 3) | (1 << 4);
    // SAFETY: the caller passes a live object, whose type is alive.
    let flags = unsafe { ffi::PyType_GetFlags(ffi::Py_TYPE(object)) };
    let mut before = 0;
    if flags & ffi::Py_TPFLAGS_HAVE_GC != 0 {
        before += std::mem::size_of::<[usize; 2]>(); // PyGC_Head
    }
    if flags & PREHEADER != 0 {
        before += 2 * std::mem::size_of::<*mut ffi::PyObject>();
    }
    object.cast::<u8>().wrapping_sub(before)
}

/// The bytes of `object`'s own block, and of the tables a dict, list, set
/// or bytearray keeps apart from it, as the debug allocator hooks recorded
/// them; a block without their header counts 0.
///
/// # Safety
/// `object` must be a live object.
unsafe fn own_bytes(object: *mut ffi::PyObject) -> u64 {
    // SAFETY: the caller passes a live object.
    let block = unsafe { block_of(object) };
    let tables = owned_blocks(object).into_iter().filter(|&b| b != 0);
    // SAFETY: each is the start of a live block, or memory inside the
    // object (inline values), 16 bytes into something mapped either way.
    std::iter::once(block as usize)
        .chain(tables)
        .map(|b| unsafe { requested_size(b as *const u8) })
        .sum()
}

/// The size requested for the block at `block`, read from the header the
/// debug allocator hooks put before it: the size (big-endian), the API id
/// ('r', 'm' or 'o') and 7 forbidden bytes (0xFD). `0` if the header is
/// not there.
///
/// # Safety
/// The 16 bytes before `block` must be readable.
unsafe fn requested_size(block: *const u8) -> u64 {
    // SAFETY: the caller vouches for the 16 bytes before `block`.
    let header = unsafe { std::slice::from_raw_parts(block.wrapping_sub(16), 16) };
    let api_ok = matches!(header[8], b'r' | b'm' | b'o');
    if !api_ok || header[9..].iter().any(|&b| b != 0xFD) {
        return 0;
    }
    u64::from_be_bytes(header[..8].try_into().expect("8 bytes"))
}

/// The native bytes (see `native`), 0 where they cannot be read.
fn native() -> u64 {
    native_bytes().unwrap_or(0).max(0) as u64
}

/// The resident set of this process in bytes, or 0 where /proc has none.
fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = (statm.split_whitespace().nth(1))
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    // SAFETY: getpagesize has no preconditions.
    pages * unsafe { getpagesize() } as u64
}

extern "C" {
    fn getpagesize() -> std::os::raw::c_int;
}

/// The collector, paused while alive, as it was before after.
struct GcPaused(bool);

impl GcPaused {
    fn new() -> Self {
        // SAFETY: the caller holds the GIL.
        GcPaused(unsafe { ffi::PyGC_Disable() } != 0)
    }
}

impl Drop for GcPaused {
    fn drop(&mut self) {
        if self.0 {
            // SAFETY: dropped under the GIL it was made under.
            unsafe { ffi::PyGC_Enable() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_every_other_point_from_the_first() {
        let mut series = Series {
            objects: vec![0, 1, 2, 3, 4],
            bytes: vec![0, 10, 20, 30, 40],
        };
        series.thin();
        assert_eq!(series.objects, vec![0, 2, 4]);
        assert_eq!(series.bytes, vec![0, 20, 40]);
    }

    #[test]
    fn a_series_gone_quiet_for_long_is_dropped() {
        let mut all: HashMap<u8, Series> = HashMap::new();
        all.insert(1, Series::zeros(MAX_POINTS / 4));
        all.get_mut(&1).unwrap().objects[0] = 5;
        let mut live = HashMap::new();
        live.insert(2, (3, 30));
        push_all(&mut all, live, MAX_POINTS / 4);
        assert!(!all.contains_key(&1));
        assert_eq!(all[&2].objects.last(), Some(&3));
        assert_eq!(all[&2].objects.len(), MAX_POINTS / 4 + 1);
    }

    #[test]
    fn a_header_without_the_forbidden_bytes_gives_no_size() {
        let mut memory = [0u8; 24];
        memory[..8].copy_from_slice(&40u64.to_be_bytes());
        memory[8] = b'o';
        memory[9..16].fill(0xFD);
        // SAFETY: the 16 bytes before index 16 are the array's.
        assert_eq!(unsafe { requested_size(memory.as_ptr().add(16)) }, 40);
        memory[12] = 0;
        // SAFETY: as above.
        assert_eq!(unsafe { requested_size(memory.as_ptr().add(16)) }, 0);
    }
}
