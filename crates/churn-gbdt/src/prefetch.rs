//! The workspace's one `unsafe`: a hint to the CPU to start loading memory
//! that a loop will read a few steps later, where the address depends on data
//! (a row index, a table index) so the hardware prefetcher cannot guess it.

/// Asks the CPU to start loading `items[at]` into L1 (no-op when `at` is out
/// of range or off x86-64).
#[inline(always)]
pub(crate) fn prefetch<T>(items: &[T], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(item) = items.get(at) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is a hint that never faults, and the pointer is
        // into a live slice anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((item as *const T).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (items, at);
}
