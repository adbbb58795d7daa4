//! How the kernel should schedule the server's threads: the async workers,
//! which read requests and refuse the excess, before the scoring threads,
//! which keep the cores busy.
//!
//! Under overload every core is busy scoring. A request that arrives then
//! wakes an async worker, and if that worker waits for a scoring thread's
//! time slice to end (1.4 ms on 2 cores under Linux's EEVDF scheduler), a refusal
//! that takes 0.4 ms of work is answered in 5–10 ms. Linux 6.12 and later
//! let a thread ask for a shorter slice (`sched_setattr` with
//! `sched_runtime` under `SCHED_OTHER`), and a woken thread with a shorter
//! slice than the running one preempts it. The share of CPU each thread
//! gets is unchanged (a slice is not a priority), so a storm of refused
//! requests cannot starve scoring, which lowering the scoring threads'
//! priority (`nice`) did.
//!
//! Every runtime thread starts with the short slice ([`latency_sensitive`]);
//! a blocking-pool thread switches to the kernel's default slice the first
//! time it runs work ([`spawn_blocking`], which all blocking work goes
//! through). Both are hints: on other systems and
//! older kernels they do nothing, and a failure is logged once, never fatal.

use std::cell::Cell;

use axum::http::StatusCode;

use crate::ApiError;

/// The slice asked for the async workers: the shortest Linux accepts.
const WORKER_SLICE_NS: u64 = 100_000;

/// Marks the calling thread latency-sensitive (a short time slice).
pub fn latency_sensitive() {
    set_slice(WORKER_SLICE_NS);
}

thread_local! {
    static THROUGHPUT: Cell<bool> = const { Cell::new(false) };
}

/// Gives the calling thread the kernel's default time slice again, once per
/// thread: called before work on the blocking pool.
fn for_throughput() {
    if !THROUGHPUT.replace(true) {
        set_slice(0);
    }
}

/// `tokio::task::spawn_blocking` on a thread with the default slice: every
/// use of the blocking pool goes through here, since its threads start with
/// the workers' short one.
pub(crate) fn spawn_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    tokio::task::spawn_blocking(|| {
        for_throughput();
        work()
    })
}

/// Runs `work` on the blocking pool: store calls block, and parsing and
/// scoring a large body takes time that must not delay the async workers.
pub(crate) async fn off_workers<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    spawn_blocking(work).await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the work was interrupted",
        )
    })?
}

/// A multi-threaded tokio runtime whose threads are scheduled as above.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(latency_sensitive)
        .build()
}

#[cfg(target_os = "linux")]
fn set_slice(slice_ns: u64) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if let Err(e) = linux::set_slice(slice_ns) {
        WARNED.call_once(|| {
            tracing::debug!("cannot set a scheduling slice (kernel before 6.12?): {e}");
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn set_slice(_slice_ns: u64) {}

#[cfg(target_os = "linux")]
mod linux {
    /// `struct sched_attr` of `sched_setattr(2)` (`SCHED_ATTR_SIZE_VER1`).
    #[repr(C)]
    #[derive(Default)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
        sched_util_min: u32,
        sched_util_max: u32,
    }

    const SCHED_OTHER: u32 = 0;
    const SCHED_BATCH: u32 = 3;

    /// Sets the calling thread's slice (0: the kernel's default), keeping
    /// its policy and nice value; threads under a real-time or idle policy
    /// are left alone.
    pub(super) fn set_slice(slice_ns: u64) -> std::io::Result<()> {
        let size = std::mem::size_of::<SchedAttr>() as u32;
        let mut attr = SchedAttr::default();
        // SAFETY: `attr` is a valid, writable `sched_attr` of `size` bytes;
        // pid 0 is the calling thread.
        let got = unsafe {
            libc::syscall(
                libc::SYS_sched_getattr,
                0,
                &mut attr as *mut SchedAttr,
                size,
                0,
            )
        };
        if got != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if attr.sched_policy != SCHED_OTHER && attr.sched_policy != SCHED_BATCH {
            return Ok(());
        }
        let wanted = SchedAttr {
            size,
            sched_policy: attr.sched_policy,
            sched_nice: attr.sched_nice,
            sched_runtime: slice_ns,
            ..SchedAttr::default()
        };
        // SAFETY: `wanted` is a valid `sched_attr` whose `size` field says
        // its length; the kernel only reads it.
        let set =
            unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &wanted as *const SchedAttr, 0) };
        if set != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's time slice as the kernel reports it.
    fn own_slice_ns() -> Option<u64> {
        let sched = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
        let line = sched.lines().find(|l| l.starts_with("se.slice"))?;
        line.split(':').nth(1)?.trim().parse().ok()
    }

    /// Custom slices for `SCHED_OTHER` came with Linux 6.12.
    fn kernel_has_custom_slices() -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release.trim().split(['.', '-']);
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        (major, minor) >= (6, 12)
    }

    #[test]
    fn async_workers_get_a_short_slice_and_scoring_threads_the_default() {
        if !kernel_has_custom_slices() || own_slice_ns().is_none() {
            eprintln!("skipped: this kernel has no per-thread slices (Linux 6.12+)");
            return;
        }
        let default = own_slice_ns();
        let runtime = runtime().unwrap();
        let worker = runtime.block_on(async { tokio::spawn(async { own_slice_ns() }).await });
        assert_eq!(worker.unwrap(), Some(WORKER_SLICE_NS));
        let scoring = runtime.block_on(crate::predict::score_where_it_fits(false, || {
            Ok(own_slice_ns())
        }));
        assert_eq!(scoring.unwrap(), default);
        assert_ne!(default, Some(WORKER_SLICE_NS));
    }
}
