//! Native memory: what malloc's heap holds that neither Python's allocators
//! nor this extension asked for. That is what C code took for itself, with
//! `malloc` and its kin, directly or inside a library it links (zlib,
//! OpenSSL, libjpeg): memory tracemalloc and the debug hooks never see.
//!
//! glibc's `mallinfo2()` gives the bytes in use in every arena and in
//! mmapped chunks. Two counters say how much of that is not native:
//! - Python's: every block Python takes from malloc goes through its raw
//!   domain (pymalloc falls back to `PyMem_RawMalloc` for big blocks, and
//!   its arenas are mmapped apart from malloc). This module wraps the raw
//!   allocator and keeps the chunk bytes of what it hands out.
//! - ours: the shim's own Rust allocations, counted by its global
//!   allocator, which grow as records are kept.
//!
//! glibc only (`mallinfo2()`, since 2.33), as the toolkit builds on.
//!
//! Chunks freed into glibc's per-thread cache still count as in use; each
//! reading fills that cache first, so that it holds as much at every one.
//! With that, a run of clean code moves the figure by nothing, and a leak
//! by the chunks it keeps, to the byte.

use std::alloc::{GlobalAlloc, Layout, System};
use std::os::raw::c_void;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::OnceLock;

use pyo3::ffi::{self, PyMemAllocatorDomain, PyMemAllocatorEx};
use pyo3::prelude::*;

/// Native bytes a run may add without that being a sign of a leak: none.
/// Clean code's count moves both ways, so it seldom rises in every run,
/// and what does is followed by the rule of growth that goes on.
pub const SLACK: isize = 0;

/// Chunk bytes of Python's live raw blocks, from the moment the wrapper
/// was installed: blocks made before and freed after make it negative,
/// which changes no difference between two readings.
static PYTHON: AtomicIsize = AtomicIsize::new(0);
/// Chunk bytes of the shim's own live allocations.
static OURS: AtomicIsize = AtomicIsize::new(0);

/// The raw allocator found at install, which the wrapper calls, and how
/// far its blocks start into their malloc chunks.
struct Inner {
    allocator: PyMemAllocatorEx,
    offset: usize,
}

// SAFETY: the allocator's context is a pointer into the interpreter's
// static state, valid from any thread, as the raw domain requires.
unsafe impl Send for Inner {}
// SAFETY: as above; it is never written after install.
unsafe impl Sync for Inner {}

static INNER: OnceLock<Inner> = OnceLock::new();

/// The size of glibc's chunk that holds `ptr` (a pointer malloc returned):
/// its usable size plus the header word (two for an mmapped chunk, past
/// glibc's mmap threshold: eight bytes off, on at least 128 KiB).
fn chunk_bytes(ptr: *mut c_void) -> isize {
    // SAFETY: `ptr` came from malloc and is not yet freed.
    (unsafe { libc::malloc_usable_size(ptr) } + std::mem::size_of::<usize>()) as isize
}

/// Counts the shim's own heap: the records it keeps grow with the runs.
pub struct Counting;

// SAFETY: every call is passed to `System` unchanged; only counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            OURS.fetch_add(chunk_bytes(ptr.cast()), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            OURS.fetch_add(chunk_bytes(ptr.cast()), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        OURS.fetch_sub(chunk_bytes(ptr.cast()), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = chunk_bytes(ptr.cast());
        // SAFETY: forwarded with the caller's guarantees.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            OURS.fetch_add(chunk_bytes(new.cast()) - old, Ordering::Relaxed);
        }
        new
    }
}

fn inner() -> &'static Inner {
    INNER.get().expect("installed before the wrapper is")
}

/// The malloc chunk of a block the inner allocator returned.
fn chunk_of(block: *mut c_void) -> isize {
    chunk_bytes(block.cast::<u8>().wrapping_sub(inner().offset).cast())
}

extern "C" fn raw_malloc(_ctx: *mut c_void, size: usize) -> *mut c_void {
    let inner = inner();
    let block =
        (inner.allocator.malloc.expect("a raw allocator has malloc"))(inner.allocator.ctx, size);
    if !block.is_null() {
        PYTHON.fetch_add(chunk_of(block), Ordering::Relaxed);
    }
    block
}

extern "C" fn raw_calloc(_ctx: *mut c_void, nelem: usize, elsize: usize) -> *mut c_void {
    let inner = inner();
    let block = (inner.allocator.calloc.expect("a raw allocator has calloc"))(
        inner.allocator.ctx,
        nelem,
        elsize,
    );
    if !block.is_null() {
        PYTHON.fetch_add(chunk_of(block), Ordering::Relaxed);
    }
    block
}

extern "C" fn raw_realloc(_ctx: *mut c_void, ptr: *mut c_void, size: usize) -> *mut c_void {
    let inner = inner();
    let old = if ptr.is_null() { 0 } else { chunk_of(ptr) };
    let block = (inner
        .allocator
        .realloc
        .expect("a raw allocator has realloc"))(inner.allocator.ctx, ptr, size);
    if !block.is_null() {
        PYTHON.fetch_add(chunk_of(block) - old, Ordering::Relaxed);
    }
    block
}

extern "C" fn raw_free(_ctx: *mut c_void, ptr: *mut c_void) {
    let inner = inner();
    if !ptr.is_null() {
        PYTHON.fetch_sub(chunk_of(ptr), Ordering::Relaxed);
    }
    (inner.allocator.free.expect("a raw allocator has free"))(inner.allocator.ctx, ptr);
}

/// Wrap the raw domain's allocator, once per process: at the first
/// reading, holding the GIL, so that importing the shim alone changes no
/// allocator (CPython's own tests of the debug hooks' messages run with it
/// imported). Blocks allocated before and freed after change no difference
/// between two readings. The wrapper keeps the inner context, so a
/// thread that reads the allocator half-replaced still calls a consistent
/// pair.
fn install() {
    if INNER.get().is_some() {
        return;
    }
    let mut allocator = PyMemAllocatorEx {
        ctx: std::ptr::null_mut(),
        malloc: None,
        calloc: None,
        realloc: None,
        free: None,
    };
    // SAFETY: fills the struct with the raw domain's allocator.
    unsafe { ffi::PyMem_GetAllocator(PyMemAllocatorDomain::PYMEM_DOMAIN_RAW, &mut allocator) };
    // The debug hooks put two words before each block (patch 0014's
    // counter is -1 without them); tracemalloc's hooks put none of their own.
    // SAFETY: reads one counter.
    let debug = unsafe { crate::bindings::PyUnstable_Mem_DebugLiveBlocks() } >= 0;
    let offset = if debug {
        2 * std::mem::size_of::<usize>()
    } else {
        0
    };
    let mut wrapper = PyMemAllocatorEx {
        ctx: allocator.ctx,
        malloc: Some(raw_malloc),
        calloc: Some(raw_calloc),
        realloc: Some(raw_realloc),
        free: Some(raw_free),
    };
    if INNER.set(Inner { allocator, offset }).is_err() {
        return;
    }
    // SAFETY: installs the wrapper, whose calls reach `INNER`, now set.
    unsafe { ffi::PyMem_SetAllocator(PyMemAllocatorDomain::PYMEM_DOMAIN_RAW, &mut wrapper) };
}

/// Bytes malloc's heap holds for native code: in use, less Python's raw
/// blocks and the shim's own (the first call installs the wrapper that
/// counts Python's). Only differences between readings mean
/// anything.
pub fn native_bytes() -> Option<isize> {
    install();
    INNER.get()?;
    fill_thread_cache();
    // SAFETY: mallinfo2 takes each arena's lock and walks its free lists.
    let info = unsafe { libc::mallinfo2() };
    let in_use = (info.uordblks + info.hblkhd) as isize;
    Some(in_use - PYTHON.load(Ordering::Relaxed) - OURS.load(Ordering::Relaxed))
}

/// Fill every bin of this thread's cache of freed chunks (glibc's tcache,
/// 7 chunks of each size up to 1,032 bytes): `mallinfo2()` counts cached
/// chunks as in use, so a cache as full at one reading as at the next
/// leaves only what the code holds. Python's own frees churn it all the
/// time: each object made or freed adds or frees a raw entry in the table
/// of traced objects.
///
/// Each bin is filled with 7 chunks of exactly its size. A malloc the
/// cache cannot serve may return a chunk up to 16 bytes bigger (glibc
/// does not split off less than its minimum chunk), which a free puts in
/// the next bin: such chunks are kept aside and freed after, into bins
/// already full (the bins are filled from the largest down).
fn fill_thread_cache() {
    const BINS: usize = 64;
    const PER_BIN: usize = 7;
    // Odd-sized chunks kept aside per bin, at most: each malloc takes one
    // more chunk from the heap, so few are ever needed.
    const ODD: usize = 64;
    for bin in (0..BINS).rev() {
        // A request of 24 + 16k bytes takes a chunk of 32 + 16k.
        let size = 24 + 16 * bin;
        let mut exact = [std::ptr::null_mut::<c_void>(); PER_BIN];
        let mut odd = [std::ptr::null_mut::<c_void>(); ODD];
        let (mut exacts, mut odds) = (0, 0);
        while exacts < PER_BIN {
            // SAFETY: plain malloc, freed below. Kept from the optimiser,
            // which may drop a malloc whose block nothing uses.
            let chunk = std::hint::black_box(unsafe { libc::malloc(size) });
            // SAFETY: `chunk` came from malloc (usable size 0 for NULL).
            if unsafe { libc::malloc_usable_size(chunk) } == size || odds == ODD {
                exact[exacts] = chunk;
                exacts += 1;
            } else {
                odd[odds] = chunk;
                odds += 1;
            }
        }
        for &chunk in exact.iter().chain(&odd[..odds]) {
            // SAFETY: each came from malloc above (free(NULL) does nothing).
            unsafe { libc::free(chunk) };
        }
    }
}

/// `native_bytes()`, for Python: what the monitor and the checks read.
#[pyfunction(name = "native_bytes")]
pub fn py_native_bytes() -> Option<isize> {
    native_bytes()
}
