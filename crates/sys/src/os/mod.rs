//! The operating system, as cachekeeper needs it: files opened relative to directory fds and
//! never through a symlink, a parallel walker, cargo's locks, filesystems' sizes.
//!
//! Invariant: nothing here knows about plans or rules; it knows files, fds and mounts.

pub mod disk;
pub mod locks;
pub mod memory;
pub mod private;
pub mod process;
pub mod safefs;
pub mod walk;
