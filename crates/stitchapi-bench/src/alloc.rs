//! A counting global allocator: allocations, bytes and the largest single allocation, counted
//! **per thread**, so a client measured on its own thread is not charged for the upstream's
//! allocations on other threads.
//!
//! `stats_alloc` counts process-wide and does not record the largest allocation, so this
//! crate has its own. Implementing [`GlobalAlloc`] needs `unsafe`; this module is the only
//! place in the workspace that opts out of the `unsafe_code` lint, and it only forwards to
//! [`System`] after bumping thread-local counters (const-initialised `Cell`s without a
//! destructor, so counting never allocates and is safe during thread teardown).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts of the current thread since the last [`reset`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Allocations (a `realloc` counts as one, of its new size).
    pub allocations: u64,
    /// Bytes requested by those allocations.
    pub bytes: u64,
    /// The largest single allocation, in bytes.
    pub largest: u64,
}

thread_local! {
    static COUNTS: Cell<Counts> = const {
        Cell::new(Counts { allocations: 0, bytes: 0, largest: 0 })
    };
}

fn record(size: usize) {
    let size = size as u64;
    let _ = COUNTS.try_with(|counts| {
        let mut c = counts.get();
        c.allocations += 1;
        c.bytes += size;
        c.largest = c.largest.max(size);
        counts.set(c);
    });
}

/// The current thread's counts since the last [`reset`] on it.
pub fn counts() -> Counts {
    COUNTS.try_with(Cell::get).unwrap_or_default()
}

/// Zeroes the current thread's counts.
pub fn reset() {
    let _ = COUNTS.try_with(|counts| counts.set(Counts::default()));
}

/// The system allocator, counting per thread. Install it in a bench binary with
/// `#[global_allocator] static GLOBAL: CountingAlloc = CountingAlloc;`.
#[derive(Debug)]
pub struct CountingAlloc;

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counting touches only thread-local `Cell`s and never allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
