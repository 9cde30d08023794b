//! The whole live heap as a graph, for finding what holds a leaked object: one
//! `tp_traverse` pass over every object, indexed by referent.

use std::collections::{HashSet, VecDeque};

use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyList;
use pyo3::{ffi, Borrowed, PyTraverseError};

use crate::objects::{
    for_each_referent, for_each_root, live_objects, refcount, unreleased_type_refs,
};

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
    /// Who references object `i`, one entry per reference.
    index: ReverseIndex,
    /// References to object `i` that are not edges: from the interpreter's
    /// roots in C, from the lists of other `Heap`s, which reference
    /// everything and are never walked, and to a type from its dead
    /// instances' deallocs (patch 0019). Counted as accounted for.
    hidden: Vec<u32>,
    /// The objects the interpreter holds from C, with where it keeps each.
    roots: Vec<(u32, String)>,
}

#[pymethods]
impl Heap {
    #[new]
    fn new(py: Python<'_>) -> PyResult<Self> {
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
        let mut hidden = vec![0u32; ids.len()];
        for &list in &other_lists {
            // SAFETY: a `Heap` in `objects` holds the list.
            let list = unsafe { borrow(py, list) };
            for_each_referent(list, |referent| {
                if let Some(referent) = index(referent) {
                    hidden[referent as usize] += 1;
                }
            });
        }
        for (referent, count) in unreleased_type_refs(py) {
            if let Some(referent) = index(referent) {
                let count = u32::try_from(count).unwrap_or(u32::MAX);
                hidden[referent as usize] = hidden[referent as usize].saturating_add(count);
            }
        }
        let mut roots = Vec::new();
        for_each_root(py, |referent, description| {
            if let Some(referent) = index(referent) {
                hidden[referent as usize] += 1;
                roots.push((referent, description.to_owned()));
            }
        });

        let index = ReverseIndex::new(ids.len(), edges);
        Ok(Heap {
            objects: objects.unbind(),
            ids,
            index,
            hidden,
            roots,
        })
    }

    /// Every object the interpreter holds from C, with where it is kept.
    fn roots(&self) -> Vec<(usize, String)> {
        self.roots
            .iter()
            .map(|(index, description)| (self.ids[*index as usize], description.clone()))
            .collect()
    }

    /// Every object with references nothing accounts for, and how many.
    fn unaccounted(&self, py: Python<'_>) -> Vec<(usize, isize)> {
        (0..self.ids.len() as u32)
            .filter_map(|index| {
                let count = self.unaccounted_at(py, index);
                (count > 0).then(|| (self.ids[index as usize], count))
            })
            .collect()
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

    /// The ids of the objects that reference object `id`, once per reference.
    fn referrer_ids(&self, id: usize) -> PyResult<Vec<usize>> {
        let referrers = self.referrers_of(self.index(id)?);
        Ok(referrers.iter().map(|&i| self.ids[i as usize]).collect())
    }

    /// The shortest chain of references [root, ..., target] from any object
    /// whose id is in `roots` to whichever object of `targets` is closest to
    /// one, or `None` if no root reaches any of them. Linear in the heap.
    fn shortest_path<'py>(
        &self,
        py: Python<'py>,
        targets: Vec<usize>,
        roots: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Vec<Bound<'py, PyAny>>>> {
        let targets = self.indices(&targets)?;
        let mut root_indices = HashSet::new();
        for root in roots.try_iter()? {
            if let Ok(index) = self.index(root?.extract()?) {
                root_indices.insert(index);
            }
        }
        let chain = self.index.shortest_chain(&targets, &root_indices);
        Ok(chain.map(|chain| self.objects_at(py, &chain)))
    }

    /// The shortest chain of references [top, ..., target] to an object of
    /// `targets` from an object that nothing in the heap references;
    /// failing that, the longest chain without a loop that the search
    /// reached. Linear in the heap.
    fn unreachable_path<'py>(
        &self,
        py: Python<'py>,
        targets: Vec<usize>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let targets = self.indices(&targets)?;
        Ok(self.objects_at(py, &self.index.unreachable_chain(&targets)))
    }

    /// How many references to object `id` no object in the heap accounts
    /// for: 0 for an immortal object, never negative.
    fn unaccounted_references(&self, py: Python<'_>, id: usize) -> PyResult<isize> {
        Ok(self.unaccounted_at(py, self.index(id)?))
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

    fn indices(&self, ids: &[usize]) -> PyResult<Vec<u32>> {
        if ids.is_empty() {
            return Err(PyValueError::new_err("no target objects given"));
        }
        ids.iter().map(|&id| self.index(id)).collect()
    }

    fn unaccounted_at(&self, py: Python<'_>, index: u32) -> isize {
        let accounted = self.referrers_of(index).len() + self.hidden[index as usize] as usize;
        // One more reference is the heap's own list.
        refcount(self.get(py, index)).map_or(0, |count| (count - accounted as isize - 1).max(0))
    }

    fn referrers_of(&self, index: u32) -> &[u32] {
        self.index.referrers_of(index)
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
}

/// In `ReverseIndex::search`, the mark of an object not reached yet.
const UNSEEN: u32 = u32::MAX;

/// Who references whom among objects numbered from 0, by referent: the
/// graph part of a `Heap`, without the objects.
struct ReverseIndex {
    /// The referrers of object `i` are `referrers[starts[i]..starts[i + 1]]`,
    /// one per reference.
    starts: Vec<usize>,
    referrers: Vec<u32>,
}

impl ReverseIndex {
    /// The index of `edges`, given as (referent, referrer) among `count`
    /// objects.
    fn new(count: usize, edges: Vec<(u32, u32)>) -> Self {
        // A counting sort by referent.
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
        ReverseIndex { starts, referrers }
    }

    /// The number of objects.
    fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// The objects that reference object `index`, once per reference.
    fn referrers_of(&self, index: u32) -> &[u32] {
        let index = index as usize;
        &self.referrers[self.starts[index]..self.starts[index + 1]]
    }

    /// The shortest chain [root, ..., target] from an object of `roots` to
    /// one of `targets`, if any root reaches one.
    fn shortest_chain(&self, targets: &[u32], roots: &HashSet<u32>) -> Option<Vec<u32>> {
        self.search(targets, |index| roots.contains(&index)).ok()
    }

    /// The shortest chain [top, ..., target] to one of `targets` from an
    /// object that nothing references; failing that, the chain from one of
    /// the objects farthest from the targets.
    fn unreachable_chain(&self, targets: &[u32]) -> Vec<u32> {
        self.search(targets, |index| self.referrers_of(index).is_empty())
            .unwrap_or_else(|farthest| farthest)
    }

    /// Walks referrers breadth first from the objects `targets` (at least
    /// one) until `stop` accepts an object. Returns the chain [that object,
    /// ..., a target], or as the error the chain from the object reached
    /// last, which is one of the farthest. No chain repeats an object: each
    /// is reached once. There is no depth limit.
    fn search(&self, targets: &[u32], stop: impl Fn(u32) -> bool) -> Result<Vec<u32>, Vec<u32>> {
        // For each object reached, the next object on its way to a target.
        let mut next = vec![UNSEEN; self.len()];
        let mut queue = VecDeque::new();
        for &target in targets {
            if next[target as usize] == UNSEEN {
                next[target as usize] = target;
                queue.push_back(target);
            }
        }
        let mut last = targets[0];
        while let Some(index) = queue.pop_front() {
            last = index;
            if stop(index) {
                return Ok(chain(&next, index));
            }
            for &referrer in self.referrers_of(index) {
                if next[referrer as usize] == UNSEEN {
                    next[referrer as usize] = index;
                    queue.push_back(referrer);
                }
            }
        }
        Err(chain(&next, last))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The index of `count` objects where each `(from, to)` of `references`
    /// is one reference from object `from` to object `to`.
    fn graph(count: usize, references: &[(u32, u32)]) -> ReverseIndex {
        let edges = references.iter().map(|&(from, to)| (to, from)).collect();
        ReverseIndex::new(count, edges)
    }

    fn sorted_referrers(index: &ReverseIndex, object: u32) -> Vec<u32> {
        let mut referrers = index.referrers_of(object).to_vec();
        referrers.sort_unstable();
        referrers
    }

    fn roots(roots: &[u32]) -> HashSet<u32> {
        roots.iter().copied().collect()
    }

    /// Each object of `chain` references the next one, and none repeats.
    fn assert_is_a_chain(index: &ReverseIndex, chain: &[u32]) {
        for pair in chain.windows(2) {
            assert!(
                index.referrers_of(pair[1]).contains(&pair[0]),
                "{} does not reference {} in {chain:?}",
                pair[0],
                pair[1]
            );
        }
        let distinct: HashSet<_> = chain.iter().collect();
        assert_eq!(distinct.len(), chain.len(), "{chain:?} repeats an object");
    }

    #[test]
    fn reverse_index_lists_every_reference_by_referent() {
        // 0 references 1 twice, 2 references itself, 3 references 1, and the
        // last object, 4, is referenced by 1. Nothing references 0 or 3.
        let index = graph(5, &[(0, 1), (1, 4), (0, 1), (2, 2), (3, 1)]);
        assert_eq!(index.len(), 5);
        assert!(sorted_referrers(&index, 0).is_empty());
        assert_eq!(sorted_referrers(&index, 1), [0, 0, 3]);
        assert_eq!(sorted_referrers(&index, 2), [2]);
        assert!(sorted_referrers(&index, 3).is_empty());
        assert_eq!(sorted_referrers(&index, 4), [1]);
    }

    #[test]
    fn reverse_index_without_references() {
        let index = graph(3, &[]);
        assert_eq!(index.len(), 3);
        for object in 0..3 {
            assert!(index.referrers_of(object).is_empty());
        }
        assert_eq!(graph(0, &[]).len(), 0);
    }

    #[test]
    fn chain_follows_next_back_to_where_the_search_started() {
        // Two searches' starts, 0 and 3, each marked by pointing at itself.
        let next = [0, 0, 1, 3, 3, UNSEEN];
        assert_eq!(chain(&next, 2), [2, 1, 0]);
        assert_eq!(chain(&next, 4), [4, 3]);
        assert_eq!(chain(&next, 0), [0]);
    }

    #[test]
    fn shortest_chain_comes_from_the_nearest_root() {
        // Root 3 reaches target 0 in three steps, root 5 in two.
        let index = graph(6, &[(3, 2), (2, 1), (1, 0), (5, 4), (4, 0)]);
        assert_eq!(
            index.shortest_chain(&[0], &roots(&[3, 5])),
            Some(vec![5, 4, 0])
        );
        assert_eq!(
            index.shortest_chain(&[0], &roots(&[3])),
            Some(vec![3, 2, 1, 0])
        );
    }

    #[test]
    fn shortest_chain_ends_at_the_closest_target() {
        // Root 2 reaches target 1 directly and target 0 through 3.
        let index = graph(4, &[(2, 3), (3, 0), (2, 1)]);
        for targets in [[0, 1], [1, 0]] {
            assert_eq!(
                index.shortest_chain(&targets, &roots(&[2])),
                Some(vec![2, 1])
            );
        }
    }

    #[test]
    fn a_target_that_is_a_root_is_the_whole_chain() {
        let index = graph(2, &[(1, 0)]);
        assert_eq!(index.shortest_chain(&[0], &roots(&[0, 1])), Some(vec![0]));
        assert_eq!(index.shortest_chain(&[0, 0], &roots(&[0])), Some(vec![0]));
    }

    #[test]
    fn shortest_chain_follows_references_backwards_only() {
        // Target 0 references 1, and 2 references 0's referent 1: neither
        // holds 0.
        let index = graph(3, &[(0, 1), (2, 1)]);
        assert_eq!(index.shortest_chain(&[0], &roots(&[1])), None);
        assert_eq!(index.shortest_chain(&[0], &roots(&[2])), None);
        assert_eq!(index.shortest_chain(&[0], &roots(&[])), None);
        // The other way round, 1 is held by both.
        assert_eq!(index.shortest_chain(&[1], &roots(&[2])), Some(vec![2, 1]));
    }

    #[test]
    fn shortest_chain_leaves_cycles_behind() {
        // 1 and 2 reference each other and 2 itself; root 3 holds the loop.
        let index = graph(4, &[(1, 0), (2, 1), (1, 2), (2, 2), (3, 2)]);
        let chain = index.shortest_chain(&[0], &roots(&[3])).unwrap();
        assert_eq!(chain, [3, 2, 1, 0]);
        assert_is_a_chain(&index, &chain);
    }

    #[test]
    fn unreachable_chain_starts_at_an_object_nothing_references() {
        // Target 0 is held by the loop 1 <-> 2, nearer, and by 3 -> 4 -> 5,
        // of which nothing references 3.
        let index = graph(6, &[(1, 0), (2, 1), (1, 2), (3, 4), (4, 5), (5, 0)]);
        let chain = index.unreachable_chain(&[0]);
        assert_eq!(chain, [3, 4, 5, 0]);
        assert_is_a_chain(&index, &chain);
    }

    #[test]
    fn unreachable_chain_of_a_target_nothing_references_is_the_target() {
        let index = graph(2, &[(0, 1)]);
        assert_eq!(index.unreachable_chain(&[0]), [0]);
    }

    #[test]
    fn an_object_that_references_itself_is_no_top() {
        // 1, nearer than 2, references itself: still a reference.
        let index = graph(4, &[(1, 0), (1, 1), (2, 3), (3, 0)]);
        assert_eq!(index.unreachable_chain(&[0]), [2, 3, 0]);
    }

    #[test]
    fn unreachable_chain_in_loops_reaches_the_farthest_object() {
        // Everything that holds 0 is in the loop 1 -> 3 -> 2 -> 1, which 4
        // shortcuts; 3 is the farthest from 0.
        let index = graph(5, &[(1, 0), (4, 0), (2, 1), (3, 2), (1, 3), (1, 4)]);
        assert_eq!(index.search(&[0], |_| false), Err(vec![3, 2, 1, 0]));
        let chain = index.unreachable_chain(&[0]);
        assert_eq!(chain, [3, 2, 1, 0]);
        assert_is_a_chain(&index, &chain);
    }

    #[test]
    fn searches_have_no_depth_limit() {
        // A chain of references N - 1 -> ... -> 1 -> 0, far longer than any
        // holder chain in practice.
        const N: u32 = 100_000;
        let references: Vec<_> = (1..N).map(|i| (i, i - 1)).collect();
        let index = graph(N as usize, &references);
        let whole: Vec<u32> = (0..N).rev().collect();
        assert_eq!(
            index.shortest_chain(&[0], &roots(&[N - 1])),
            Some(whole.clone())
        );
        assert_eq!(index.unreachable_chain(&[0]), whole);

        // Broken in the middle, the far half is out of reach, and the near
        // half has a top nothing references.
        let middle = N / 2;
        let broken: Vec<_> = references
            .into_iter()
            .filter(|&(from, _)| from != middle + 1)
            .collect();
        let index = graph(N as usize, &broken);
        assert_eq!(index.shortest_chain(&[0], &roots(&[N - 1])), None);
        assert_eq!(
            index.shortest_chain(&[0], &roots(&[middle])).unwrap().len(),
            middle as usize + 1
        );
        let near: Vec<u32> = (0..=middle).rev().collect();
        assert_eq!(index.unreachable_chain(&[0]), near);
    }
}
