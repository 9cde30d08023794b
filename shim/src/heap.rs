//! The whole live heap as a graph, for finding what holds a leaked object: one
//! `tp_traverse` pass over every object, indexed by referent.

use std::collections::{HashSet, VecDeque};

use pyo3::exceptions::PyKeyError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyList;
use pyo3::{ffi, Borrowed, PyTraverseError};

use crate::objects::{for_each_referent, live_objects, refcount};

/// Every live object and who references whom, from one `tp_traverse` pass.
// Objects are numbered by their place in `ids`. `u32` numbers halve the
// index's memory; 4G objects would not fit in memory anyway.
#[pyclass(frozen, module = "check_leaks._shim")]
pub struct Heap {
    /// The list from `sys.getobjects`: it keeps every object in `ids` alive,
    /// so their ids stay valid.
    objects: Py<PyList>,
    /// The id of every object, sorted.
    ids: Vec<usize>,
    /// The referrers of object `i` are `referrers[starts[i]..starts[i + 1]]`,
    /// one per reference.
    starts: Vec<usize>,
    referrers: Vec<u32>,
    /// References to object `i` from the lists of other `Heap`s (empty if
    /// there were none): counted as accounted for, never walked, since such
    /// a list references everything.
    hidden: Vec<u32>,
}

#[pymethods]
impl Heap {
    #[new]
    #[pyo3(signature = (extra_edges = None), text_signature = "(extra_edges=())")]
    fn new(py: Python<'_>, extra_edges: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        // Iterated before the heap is taken: the iterator may create the
        // objects it names (frame objects, say), and they must be in it.
        let extra: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> = match extra_edges {
            Some(edges) => edges
                .try_iter()?
                .map(|edge| edge?.extract())
                .collect::<PyResult<_>>()?,
            None => Vec::new(),
        };
        let objects = live_objects(&py.import("sys")?.getattr("getobjects")?)?;

        let mut other_lists = Vec::new();
        let mut ids = Vec::with_capacity(objects.len());
        for object in &objects {
            if let Ok(heap) = object.cast_exact::<Heap>() {
                other_lists.push(heap.get().objects.as_ptr() as usize);
            }
            ids.push(object.as_ptr() as usize);
        }
        ids.retain(|id| !other_lists.contains(id));
        ids.sort_unstable();
        let index = |id: usize| ids.binary_search(&id).ok().map(|i| i as u32);

        // (referent, referrer)
        let mut edges = Vec::new();
        for (referrer, &id) in ids.iter().enumerate() {
            // SAFETY: `objects` holds every object in `ids`.
            let object = unsafe { borrow(py, id) };
            for_each_referent(object, |referent| {
                if let Some(referent) = index(referent) {
                    edges.push((referent, referrer as u32));
                }
            });
        }
        for (referrer, referent) in &extra {
            let referrer = index(referrer.as_ptr() as usize);
            if let (Some(referrer), Some(referent)) = (referrer, index(referent.as_ptr() as usize))
            {
                edges.push((referent, referrer));
            }
        }
        let mut hidden = Vec::new();
        for &list in &other_lists {
            hidden.resize(ids.len(), 0);
            // SAFETY: a `Heap` in `objects` holds the list.
            let list = unsafe { borrow(py, list) };
            for_each_referent(list, |referent| {
                if let Some(referent) = index(referent) {
                    hidden[referent as usize] += 1;
                }
            });
        }

        let (starts, referrers) = by_referent(ids.len(), edges);
        Ok(Heap {
            objects: objects.unbind(),
            ids,
            starts,
            referrers,
            hidden,
        })
    }

    fn __len__(&self) -> usize {
        self.ids.len()
    }

    fn __contains__(&self, id: usize) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    /// The object whose id is `id`.
    fn object<'py>(&self, py: Python<'py>, id: usize) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.object_at(py, self.index(id)?))
    }

    /// The distinct objects that reference `obj` directly.
    fn referrers<'py>(&self, obj: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let mut referrers = self
            .referrers_of(self.index(obj.as_ptr() as usize)?)
            .to_vec();
        referrers.sort_unstable();
        referrers.dedup();
        Ok(self.objects_at(obj.py(), &referrers))
    }

    /// The shortest chain of references [root, ..., object `id`] from any
    /// object whose id is in `roots`, or `None` if none is within
    /// `max_depth` references.
    #[pyo3(signature = (id, roots, max_depth = 100))]
    fn shortest_path<'py>(
        &self,
        py: Python<'py>,
        id: usize,
        roots: &Bound<'py, PyAny>,
        max_depth: usize,
    ) -> PyResult<Option<Vec<Bound<'py, PyAny>>>> {
        let target = self.index(id)?;
        let mut root_indices = HashSet::new();
        for root in roots.try_iter()? {
            if let Ok(index) = self.index(root?.extract()?) {
                root_indices.insert(index);
            }
        }
        let chain = self.search(target, max_depth, |index| root_indices.contains(&index));
        Ok(chain.ok().map(|chain| self.objects_at(py, &chain)))
    }

    /// The shortest chain of references [top, ..., object `id`] from an
    /// object that nothing in the heap references; failing that, the longest
    /// chain without a loop within `max_depth` references.
    #[pyo3(signature = (id, max_depth = 100))]
    fn unreachable_path<'py>(
        &self,
        py: Python<'py>,
        id: usize,
        max_depth: usize,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let target = self.index(id)?;
        let chain = self.search(target, max_depth, |index| {
            self.referrers_of(index).is_empty()
        });
        Ok(self.objects_at(py, &chain.unwrap_or_else(|farthest| farthest)))
    }

    /// How many references to object `id` no object in the heap accounts
    /// for: 0 for an immortal object, never negative.
    fn unaccounted_references(&self, py: Python<'_>, id: usize) -> PyResult<isize> {
        let index = self.index(id)?;
        let hidden = self.hidden.get(index as usize).copied().unwrap_or(0);
        let accounted = self.referrers_of(index).len() + hidden as usize;
        // One more reference is the heap's own list.
        Ok(
            refcount(self.get(py, index))
                .map_or(0, |count| (count - accounted as isize - 1).max(0)),
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.objects)
    }
}

impl Heap {
    /// The number of the object whose id is `id`; KeyError if there is none.
    fn index(&self, id: usize) -> PyResult<u32> {
        match self.ids.binary_search(&id) {
            Ok(index) => Ok(index as u32),
            Err(_) => Err(PyKeyError::new_err(id)),
        }
    }

    fn referrers_of(&self, index: u32) -> &[u32] {
        let index = index as usize;
        &self.referrers[self.starts[index]..self.starts[index + 1]]
    }

    fn get<'a, 'py>(&'a self, py: Python<'py>, index: u32) -> Borrowed<'a, 'py, PyAny> {
        // SAFETY: `self.objects` holds every object in `ids`.
        unsafe { borrow(py, self.ids[index as usize]) }
    }

    fn object_at<'py>(&self, py: Python<'py>, index: u32) -> Bound<'py, PyAny> {
        self.get(py, index).to_owned()
    }

    fn objects_at<'py>(&self, py: Python<'py>, indices: &[u32]) -> Vec<Bound<'py, PyAny>> {
        indices
            .iter()
            .map(|&index| self.object_at(py, index))
            .collect()
    }

    /// Walks referrers breadth first from object `target`, at most
    /// `max_depth` references away, until `stop` accepts an object. Returns
    /// the chain [that object, ..., target], or as the error the chain from
    /// the object reached last, which is one of the farthest. No chain
    /// repeats an object: each is reached once.
    fn search(
        &self,
        target: u32,
        max_depth: usize,
        stop: impl Fn(u32) -> bool,
    ) -> Result<Vec<u32>, Vec<u32>> {
        // For each object reached, the next object on its way to `target`.
        let mut next = vec![UNSEEN; self.ids.len()];
        next[target as usize] = target;
        let mut queue = VecDeque::from([(target, 0)]);
        let mut last = target;
        while let Some((index, depth)) = queue.pop_front() {
            last = index;
            if stop(index) {
                return Ok(chain(&next, index));
            }
            if depth == max_depth {
                continue;
            }
            for &referrer in self.referrers_of(index) {
                if next[referrer as usize] == UNSEEN {
                    next[referrer as usize] = index;
                    queue.push_back((referrer, depth + 1));
                }
            }
        }
        Err(chain(&next, last))
    }
}

/// In `Heap::search`, the mark of an object not reached yet.
const UNSEEN: u32 = u32::MAX;

/// The CSR index of `edges`, given as (referent, referrer) among `count`
/// objects: the referrers of object `i` are `referrers[starts[i]..starts[i + 1]]`.
fn by_referent(count: usize, edges: Vec<(u32, u32)>) -> (Vec<usize>, Vec<u32>) {
    let mut starts = vec![0; count + 1];
    for &(referent, _) in &edges {
        starts[referent as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut free = starts.clone();
    let mut referrers = vec![0; edges.len()];
    for (referent, referrer) in edges {
        referrers[free[referent as usize]] = referrer;
        free[referent as usize] += 1;
    }
    (starts, referrers)
}

/// The chain from object `from` to the start of a search, along `next`.
fn chain(next: &[u32], mut from: u32) -> Vec<u32> {
    let mut chain = vec![from];
    while next[from as usize] != from {
        from = next[from as usize];
        chain.push(from);
    }
    chain
}

/// The object at address `id`.
///
/// # Safety
/// Something must keep the object at `id` alive while the result is used.
unsafe fn borrow<'a, 'py>(py: Python<'py>, id: usize) -> Borrowed<'a, 'py, PyAny> {
    // SAFETY: the caller keeps the object alive; the token proves the GIL.
    unsafe { Borrowed::from_ptr(py, id as *mut ffi::PyObject) }
}
