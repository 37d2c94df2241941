//! Giving freed heap memory back to the operating system.
//!
//! glibc's allocator keeps pages freed inside its heaps resident until
//! `malloc_trim` is called or the top of the heap is free. A syncer or API
//! server that briefly holds many objects (a burst of pods starting: full
//! objects held until they settle) would otherwise keep that peak as RSS
//! for its whole life, although its live data is much smaller (issue 4:
//! syncer RSS per synced pod). [`spawn_trimmer`] calls `malloc_trim(0)`
//! (glibc ≥ 2.8 also releases free pages in the middle of the heap) every
//! [`TRIM_INTERVAL`], as jemalloc's and mimalloc's background purging do on
//! their own. Other C libraries: nothing to do, nothing is spawned.

use std::time::Duration;

/// How often freed memory is returned: 5 s (short enough that RSS follows
/// the live data a few seconds after a burst; one trim of a heap of tens of
/// MiB takes well under a millisecond).
pub const TRIM_INTERVAL: Duration = Duration::from_secs(5);

/// Starts a background thread (`vkube-malloc-trim`) that returns freed heap
/// pages to the OS every [`TRIM_INTERVAL`] (glibc only; elsewhere a no-op).
#[allow(unsafe_code)]
pub fn spawn_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let spawned = std::thread::Builder::new()
            .name("vkube-malloc-trim".into())
            .stack_size(64 * 1024)
            .spawn(|| {
                loop {
                    std::thread::sleep(TRIM_INTERVAL);
                    // SAFETY: malloc_trim only takes glibc's allocator locks;
                    // it is documented as safe to call at any time.
                    unsafe {
                        libc::malloc_trim(0);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "not returning freed memory to the OS");
        }
    }
}
