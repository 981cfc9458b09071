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
pub(crate) fn try_lock(profile: BorrowedFd<'_>) -> io::Result<Outcome> {
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

/// Whether a program other than cachekeeper holds a `flock` on `name` in `dir` now, as
/// `/proc/locks` lists it: a build's hold on a profile's lock, seen without taking the lock
/// (taking it would make the build wait). Holders are told by their command name (cachekeeper's
/// own sweeps and scans hold or try the lock too); one whose pid is not visible here (another
/// pid namespace) counts as another program.
pub fn held_by_another_program(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    let st = rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
    let (major, minor) = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
    let locks = read_proc_file(std::path::Path::new("/proc/locks"), 4 << 20)?;
    let ours = own_command();
    Ok(flock_holders(&locks, major, minor, st.st_ino).any(|pid| {
        pid == 0
            || read_proc_file(std::path::Path::new(&format!("/proc/{pid}/comm")), 64)
                .map_or(true, |comm| comm.trim_end() != ours)
    }))
}

/// The command name of this process (`/proc/self/comm`).
fn own_command() -> &'static str {
    static OURS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OURS.get_or_init(|| {
        read_proc_file(std::path::Path::new("/proc/self/comm"), 64)
            .map(|c| c.trim_end().to_string())
            .unwrap_or_default()
    })
}

/// A file of `/proc`, read to at most `cap` bytes (their sizes read as 0, so no stat helps).
fn read_proc_file(path: &std::path::Path, cap: u64) -> io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    File::open(path)?.take(cap).read_to_string(&mut text)?;
    Ok(text)
}

/// Pids holding (not waiting for) a `flock` on the inode `ino` of device `major:minor`, from the
/// text of `/proc/locks` (`1: FLOCK  ADVISORY  WRITE 1278 fe:00:1234567 0 EOF`; a waiter's line
/// has `->` after the number; major and minor are hex, the inode decimal).
fn flock_holders(locks: &str, major: u32, minor: u32, ino: u64) -> impl Iterator<Item = u32> + '_ {
    locks.lines().filter_map(move |line| {
        let mut f = line.split_whitespace().skip(1);
        let kind = f.next()?;
        if kind != "FLOCK" {
            return None;
        }
        let pid: i64 = f.nth(2)?.parse().ok()?;
        let mut id = f.next()?.split(':');
        let (maj, min, i) = (id.next()?, id.next()?, id.next()?);
        (u32::from_str_radix(maj, 16).ok()? == major
            && u32::from_str_radix(min, 16).ok()? == minor
            && i.parse::<u64>().ok()? == ino)
            .then(|| u32::try_from(pid).unwrap_or(0))
    })
}

/// Whether rustc holds the lock of an incremental session (`s-*.lock` in a crate dir).
pub(crate) fn session_lock_held(crate_dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
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
    fn proc_locks_lines_name_holders_not_waiters() {
        let text = "\
1: FLOCK  ADVISORY  WRITE 1278 fe:00:1234567 0 EOF
1: -> FLOCK  ADVISORY  WRITE 1300 fe:00:1234567 0 EOF
2: POSIX  ADVISORY  WRITE 999 fe:00:1234567 0 EOF
3: FLOCK  ADVISORY  READ 42 fe:00:7654321 0 EOF
4: FLOCK  ADVISORY  WRITE -1 fe:00:1234567 0 EOF
";
        let pids: Vec<u32> = flock_holders(text, 0xfe, 0, 1_234_567).collect();
        assert_eq!(pids, vec![1278, 0]);
        assert_eq!(flock_holders(text, 0xfe, 1, 1_234_567).count(), 0);
    }

    #[test]
    fn a_held_flock_is_seen_in_proc_locks_and_our_own_is_not_another_programs() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(".cargo-lock"), b"").unwrap();
        let dir = crate::os::safefs::open_dir(t.path()).unwrap();
        let name = OsStr::new(".cargo-lock");
        assert!(!held_by_another_program(dir.as_fd(), name).unwrap());
        // Held by this very program: not another's.
        let ours = File::open(t.path().join(".cargo-lock")).unwrap();
        ours.lock().unwrap();
        assert!(!held_by_another_program(dir.as_fd(), name).unwrap());
        drop(ours);
        // Held by another program.
        let mut child = std::process::Command::new("flock")
            .arg(t.path().join(".cargo-lock"))
            .args(["sleep", "30"])
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while !held_by_another_program(dir.as_fd(), name).unwrap() {
            assert!(start.elapsed() < std::time::Duration::from_secs(30));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }

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
