//! The allocator's hold on memory the daemon no longer uses.
//!
//! glibc's malloc gives each thread that allocates its own arena (up to eight per core) and
//! keeps what is freed in them for reuse. A full walk allocates on every walker thread, then
//! frees nearly all of it; without more, the daemon idles holding the peak of its last walks
//! (`bench/scale.sh`, 10M files: 132 MiB resident after a few refreshes; 65 MiB with two
//! arenas). What a walk keeps (a unit's paths, found by a walker thread) then lies scattered
//! among what it freed, in every arena, and pins those pages. One arena for all threads keeps
//! the index in one heap whose free pages go back together: at 10,000 units the idle daemon
//! holds 38 MiB against 38–51 MiB with two arenas, and a full walk takes less CPU (0.80 s
//! against 0.97–1.1 s; the walkers' allocations are small and short, so they hardly contend).
//! After each refresh what is free goes back to the kernel.
//!
//! Elsewhere than glibc (musl, other systems) both are no-ops: their allocators differ.

/// Caps the allocator's arenas. Call early: arenas made before stay.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets a tunable under the allocator's own lock; no pointer is passed.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives memory that is free in the allocator's arenas back to the kernel.
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes the allocator's own locks; safe from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn releasing_free_memory_keeps_what_is_in_use() {
        super::limit_arenas();
        let kept: Vec<Vec<u8>> = (0..1000)
            .map(|i| vec![u8::try_from(i % 251).unwrap(); 4096])
            .collect();
        drop((0..10_000).map(|_| vec![0u8; 4096]).collect::<Vec<_>>());
        super::release_free();
        assert!(
            kept.iter()
                .enumerate()
                .all(|(i, v)| v.iter().all(|&b| usize::from(b) == i % 251))
        );
    }
}
