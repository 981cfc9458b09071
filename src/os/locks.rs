//! Cargo's build locks: is a build running in a profile dir, and keeping one from starting
//! while we delete there.
//!
//! Cargo takes advisory `flock`s on files in each profile dir:
//! - up to 1.95: `.cargo-lock`, exclusive, for the whole build;
//! - from 1.96: `.cargo-lock` shared, plus `.cargo-build-lock` (exclusive, or shared under
//!   fine-grained locking) and `.cargo-artifact-lock` exclusive.
//!
//! Taking a non-blocking *exclusive* lock on every one of them that exists fails if any build
//! holds any of them, in any mode, so it detects builds of every cargo version. Holding them
//! makes a build that starts meanwhile wait ("Blocking waiting for file lock"), which is what
//! we want while deleting. `cargo clean` itself takes no lock; no peer tool does.
//!
//! Locks are only taken on files that exist: creating them would modify a target dir in a
//! dry run. Cargo creates `.cargo-lock` in every profile it builds, so a profile without any
//! lock file has never been built by cargo and is reported as unlockable, never touched.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{FlockOperation, Mode, OFlags};

/// The lock files of a profile dir, across cargo versions.
pub const LOCK_FILES: [&str; 3] = [".cargo-lock", ".cargo-build-lock", ".cargo-artifact-lock"];

/// Exclusive locks on a profile's lock files; released on drop.
#[derive(Debug)]
pub struct ProfileLock {
    _files: Vec<File>,
}

#[derive(Debug)]
pub enum Outcome {
    Locked(ProfileLock),
    /// A build holds one of the locks.
    Busy,
    /// No lock file exists: not a dir cargo builds in.
    NoLockFile,
}

/// Tries to lock every lock file of the profile dir open as `profile`, without waiting.
pub fn try_lock(profile: BorrowedFd<'_>) -> io::Result<Outcome> {
    let mut files = Vec::new();
    for name in LOCK_FILES {
        let fd = match rustix::fs::openat(
            profile,
            OsStr::new(name),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        match rustix::fs::flock(fd.as_fd(), FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => files.push(File::from(fd)),
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(Outcome::Busy),
            Err(e) => return Err(e.into()),
        }
    }
    if files.is_empty() {
        Ok(Outcome::NoLockFile)
    } else {
        Ok(Outcome::Locked(ProfileLock { _files: files }))
    }
}

/// Whether rustc holds the lock of an incremental session (`s-*.lock` in a crate dir).
pub fn session_lock_held(crate_dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    let fd = match rustix::fs::openat(
        crate_dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    match rustix::fs::flock(fd.as_fd(), FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(false),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_held_lock_makes_the_profile_busy() {
        let t = tempfile::tempdir().unwrap();
        let dir = crate::os::safefs::open_dir(t.path()).unwrap();
        assert!(matches!(
            try_lock(dir.as_fd()).unwrap(),
            Outcome::NoLockFile
        ));

        for name in LOCK_FILES {
            std::fs::write(t.path().join(name), b"").unwrap();
        }
        // A build of cargo >= 1.96 holds .cargo-lock shared and .cargo-build-lock exclusive.
        let shared = File::open(t.path().join(".cargo-lock")).unwrap();
        shared.lock_shared().unwrap();
        assert!(matches!(try_lock(dir.as_fd()).unwrap(), Outcome::Busy));
        drop(shared);

        let held = match try_lock(dir.as_fd()).unwrap() {
            Outcome::Locked(l) => l,
            other => panic!("expected the lock, got {other:?}"),
        };
        // While we hold it, a build cannot take its lock.
        let build = File::open(t.path().join(".cargo-build-lock")).unwrap();
        assert!(build.try_lock().is_err());
        drop(held);
        assert!(build.try_lock().is_ok());
    }
}
