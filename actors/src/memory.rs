//! Giving memory back to the system after an incident.
//!
//! A mass death makes one project's runs read, judge and release tens of
//! thousands of rows; Rust frees all of it at the end of those runs, but
//! glibc's allocator keeps freed memory in its arenas for reuse, so the
//! process's resident size would stay at its peak for good. Once the
//! incident is over, [`give_back`] asks the allocator to return its free
//! memory to the system.

/// Returns the allocator's free memory to the system (glibc only;
/// elsewhere the allocator decides alone).
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory no allocation uses.
    unsafe {
        libc::malloc_trim(0);
    }
}
