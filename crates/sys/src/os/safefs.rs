//! File operations relative to directory file descriptors that never follow a symlink.
//!
//! Everything cachekeeper reads or deletes inside a target dir goes through here. A path is
//! opened one component at a time with `O_NOFOLLOW`, so a symlink anywhere on the way (even
//! one swapped in while we work) makes the operation fail instead of leading outside the
//! target dir. A symlink that is itself the thing to delete is unlinked as a link.
//!
//! Invariants:
//! - No function here follows a symlink, in any component.
//! - Reading a file never moves its access time when the kernel lets us avoid it
//!   (`O_NOATIME`): cargo's fingerprint atimes are our last-use signal.

use std::ffi::{CStr, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags};

/// What cachekeeper needs to know of a directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub dev: u64,
    /// The mount it is on (`statx`'s `stx_mnt_id`, Linux 5.8+): a bind mount of a directory of
    /// the same filesystem has the same `dev` but not the same mount. `None` where the kernel
    /// does not say.
    pub mnt: Option<u64>,
    pub ino: u64,
    pub nlink: u64,
    /// The owner.
    pub uid: u32,
    /// Apparent size (`st_size`).
    pub apparent: u64,
    /// Allocated size (`st_blocks * 512`), what freeing the inode gives back.
    pub bytes: u64,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    /// Status change time: moves on every write and rename, so (ino, ctime) identifies a
    /// version of a file.
    pub ctime: SystemTime,
    pub kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

fn time(secs: i64, nsec: u64) -> SystemTime {
    let nsec = u32::try_from(nsec.min(999_999_999)).unwrap_or(0);
    match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::new(s, nsec),
        Err(_) => UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::new(0, nsec),
    }
}

impl From<rustix::fs::Statx> for Meta {
    fn from(st: rustix::fs::Statx) -> Meta {
        let kind = match FileType::from_raw_mode(u32::from(st.stx_mode)) {
            FileType::Directory => Kind::Dir,
            FileType::RegularFile => Kind::File,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        };
        let ts = |t: rustix::fs::StatxTimestamp| time(t.tv_sec, u64::from(t.tv_nsec));
        Meta {
            dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            mnt: (st.stx_mask & StatxFlags::MNT_ID.bits() != 0).then_some(st.stx_mnt_id),
            ino: st.stx_ino,
            nlink: u64::from(st.stx_nlink),
            uid: st.stx_uid,
            apparent: st.stx_size,
            bytes: st.stx_blocks.saturating_mul(512),
            atime: ts(st.stx_atime),
            mtime: ts(st.stx_mtime),
            ctime: ts(st.stx_ctime),
            kind,
        }
    }
}

impl Meta {
    /// Whether this entry is on the same mount as `other` (a directory below which nothing on
    /// another filesystem, or another mount of the same one, is ever entered or removed).
    #[must_use]
    pub(crate) fn same_mount(&self, other: &Meta) -> bool {
        self.dev == other.dev
            && match (self.mnt, other.mnt) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

const STATX_MASK: StatxFlags = StatxFlags::BASIC_STATS.union(StatxFlags::MNT_ID);

/// Converts a name for the syscalls. Names with a NUL cannot exist on Linux.
fn cname(name: &OsStr) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file name contains NUL"))
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens directory `name` inside `parent`; fails on a symlink.
pub(crate) fn open_dir_at(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())?)
}

/// Opens a directory by path; the last component must not be a symlink.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        rustix::fs::CWD,
        path,
        DIR_FLAGS,
        Mode::empty(),
    )?)
}

/// Opens `rel` below `base` one component at a time, refusing symlinks and `..`.
pub(crate) fn open_rel_dir(base: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    let mut fd = rustix::io::fcntl_dupfd_cloexec(base, 0)?;
    for c in rel.components() {
        match c {
            Component::Normal(name) => fd = open_dir_at(fd.as_fd(), &cname(name)?)?,
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("refusing path component {c:?} in {}", rel.display()),
                ));
            }
        }
    }
    Ok(fd)
}

/// `lstat` of `name` inside `dir`.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Meta> {
    stat_at_c(dir, cname(name)?.as_c_str())
}

/// `lstat` of `name` inside `dir`, with the name already a C string.
pub(crate) fn stat_at_c(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Meta> {
    Ok(rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, STATX_MASK)?.into())
}

/// `fstat` of an open file.
pub(crate) fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<Meta> {
    Ok(rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, STATX_MASK)?.into())
}

/// Reads at most `limit` bytes of regular file `name` in `dir` without following a symlink
/// and, where the kernel allows (we own the file or are root), without touching its atime.
pub(crate) fn read_small_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    limit: usize,
) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let c = cname(name)?;
    let base = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = match rustix::fs::openat(dir, c.as_c_str(), base | OFlags::NOATIME, Mode::empty()) {
        Ok(fd) => fd,
        // O_NOATIME is refused for files of other users; reading then may move the atime,
        // which at worst makes a unit look used (the safe direction).
        Err(rustix::io::Errno::PERM) => rustix::fs::openat(dir, c.as_c_str(), base, Mode::empty())?,
        Err(e) => return Err(e.into()),
    };
    let mut file = std::fs::File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut buf = Vec::new();
    file.by_ref().take(limit as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The signature a `CACHEDIR.TAG` begins with (<https://bford.info/cachedir/>).
pub(crate) const CACHEDIR_SIGNATURE: &str = "Signature: 8a477f597d28d172789f06886806bc55";

/// Whether the directory open at `dir` carries cargo's `CACHEDIR.TAG`. Only such dirs are
/// ever cleaned: the tag is the contract, as it is for cargo and for backup tools.
///
/// - As the specification says, the file begins with the 43-byte signature; what follows is
///   free (so a CRLF line end is as good as cargo's LF), but it must mention cargo: a tag
///   another tool wrote is not ours to act on.
/// - The tag belongs to the directory's owner, as when cargo makes both. A tag someone else
///   put into a directory they may write but do not own (`/tmp` is the classic) is not a
///   target dir: a daemon running as root must not delete other users' files on the word of
///   whoever could write a file there.
#[must_use]
pub(crate) fn is_cargo_tagged(dir: BorrowedFd<'_>) -> bool {
    let Ok(bytes) = read_small_at(dir, OsStr::new("CACHEDIR.TAG"), 4096) else {
        return false;
    };
    let owners_match = match (stat_fd(dir), stat_at(dir, OsStr::new("CACHEDIR.TAG"))) {
        (Ok(d), Ok(t)) => d.uid == t.uid,
        _ => false,
    };
    let Some(rest) = bytes.strip_prefix(CACHEDIR_SIGNATURE.as_bytes()) else {
        return false;
    };
    owners_match
        && String::from_utf8_lossy(rest)
            .to_ascii_lowercase()
            .contains("cargo")
}

/// Whether an error means the entry disappeared under us (a racing build or `cargo clean`):
/// that is expected and never an error of ours.
#[must_use]
pub(crate) fn is_vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn open_rel_dir_refuses_symlinks_in_any_component() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        symlink(outside.path(), t.path().join("a/link")).unwrap();
        let base = open_dir(t.path()).unwrap();
        assert!(open_rel_dir(base.as_fd(), Path::new("a/b")).is_ok());
        let e = open_rel_dir(base.as_fd(), Path::new("a/link")).unwrap_err();
        // O_DIRECTORY|O_NOFOLLOW on a symlink: ENOTDIR (or ELOOP on some kernels).
        assert!(
            [rustix::io::Errno::NOTDIR, rustix::io::Errno::LOOP]
                .map(rustix::io::Errno::raw_os_error)
                .contains(&e.raw_os_error().unwrap()),
            "{e}"
        );
        assert!(open_rel_dir(base.as_fd(), Path::new("a/../a")).is_err());
    }

    #[test]
    fn reading_does_not_move_atime() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("lib-x");
        std::fs::write(&f, b"0123456789abcdef").unwrap();
        let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
        filetime::set_file_times(&f, old, old).unwrap();
        let dir = open_dir(t.path()).unwrap();
        let got = read_small_at(dir.as_fd(), OsStr::new("lib-x"), 64).unwrap();
        assert_eq!(got, b"0123456789abcdef");
        let meta = stat_at(dir.as_fd(), OsStr::new("lib-x")).unwrap();
        assert_eq!(meta.atime, UNIX_EPOCH + Duration::from_secs(1_000_000_000));
    }

    #[test]
    fn cargo_tag_needs_signature_and_cargo() {
        let t = tempfile::tempdir().unwrap();
        let dir = open_dir(t.path()).unwrap();
        assert!(!is_cargo_tagged(dir.as_fd()));
        std::fs::write(
            t.path().join("CACHEDIR.TAG"),
            format!("{CACHEDIR_SIGNATURE}\n# created by some other tool\n"),
        )
        .unwrap();
        assert!(!is_cargo_tagged(dir.as_fd()));
        std::fs::write(
            t.path().join("CACHEDIR.TAG"),
            format!(
                "{CACHEDIR_SIGNATURE}\n# This file is a cache directory tag created by cargo.\n"
            ),
        )
        .unwrap();
        assert!(is_cargo_tagged(dir.as_fd()));
        // The specification's rule: the file begins with the signature. CRLF is fine.
        std::fs::write(
            t.path().join("CACHEDIR.TAG"),
            format!("{CACHEDIR_SIGNATURE}\r\n# created by cargo\r\n"),
        )
        .unwrap();
        assert!(is_cargo_tagged(dir.as_fd()));
        std::fs::write(
            t.path().join("CACHEDIR.TAG"),
            format!(" {CACHEDIR_SIGNATURE}\n# created by cargo\n"),
        )
        .unwrap();
        assert!(!is_cargo_tagged(dir.as_fd()));
        // A tag that is not the directory owner's is not cargo's.
        if rustix::process::geteuid().is_root() {
            std::fs::write(
                t.path().join("CACHEDIR.TAG"),
                format!("{CACHEDIR_SIGNATURE}\n# created by cargo\n"),
            )
            .unwrap();
            std::os::unix::fs::lchown(t.path().join("CACHEDIR.TAG"), Some(65534), None).unwrap();
            assert!(!is_cargo_tagged(dir.as_fd()));
        }
    }
}
