//! The files cachekeeper writes of its own (state, history, last use, the metrics textfile),
//! written only inside a directory handle and never through a link.
//!
//! The daemon often runs as root: a link planted at a state file's path, or at the name of a
//! temporary file, must never make it write elsewhere (a decoy `/etc/passwd` truncated). So:
//! - the directory is opened once, refusing a symlink, and checked: owned by this user (or
//!   root) and writable by nobody else ([`PrivateDir::open`]); a directory others can write
//!   is refused with the reason, since anyone who can write there can swap our files;
//! - every file is opened relative to it with `O_NOFOLLOW` (a link at the name fails), and
//!   only a regular file is read or appended to;
//! - a file is replaced by writing a new one under a fresh name made with
//!   `O_CREAT | O_EXCL` (it never opens what is already there), syncing it, and renaming it
//!   over the old one, then syncing the directory: a crash leaves the old or the new file;
//! - files are `0600` unless asked otherwise (history and last use name a user's projects).

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};

/// A directory of cachekeeper's own, open.
#[derive(Debug)]
pub struct PrivateDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// An exclusive `flock` on a lock file in a [`PrivateDir`], held until dropped.
#[derive(Debug)]
pub struct Locked {
    _fd: OwnedFd,
}

fn refuse(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("refusing {}: {why}", path.display()),
    )
}

fn not_regular(name: &OsStr) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is not a regular file", name.to_string_lossy()),
    )
}

impl PrivateDir {
    /// Opens the directory at `path`, creating it (and its parents) with mode 0700 where
    /// missing. Refuses a symlink in its place, a directory owned by another user, and one that
    /// others may write to.
    pub fn open(path: &Path) -> io::Result<PrivateDir> {
        if let Err(e) = std::fs::symlink_metadata(path)
            && e.kind() == io::ErrorKind::NotFound
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)?;
        }
        let fd = crate::os::safefs::open_dir(path).map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
                || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
            {
                refuse(path, "it is a symlink or not a directory")
            } else {
                e
            }
        })?;
        let st = rustix::fs::fstat(&fd)?;
        let me = rustix::process::geteuid().as_raw();
        // Root's own dirs are safe for anyone to trust: only root can swap files there.
        if st.st_uid != me && st.st_uid != 0 {
            return Err(refuse(
                path,
                format!(
                    "it belongs to uid {}, not to this user (uid {me}); make it this user's (chown) or point the config elsewhere",
                    st.st_uid
                ),
            ));
        }
        if st.st_mode & 0o022 != 0 {
            return Err(refuse(
                path,
                format!(
                    "others may write to it (mode {:o}); make it writable by its owner alone (chmod go-w)",
                    st.st_mode & 0o7777
                ),
            ));
        }
        Ok(PrivateDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_at(&self, name: &OsStr, flags: OFlags, mode: u32) -> io::Result<OwnedFd> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::from_raw_mode(mode),
        )?;
        if !rustix::fs::fstat(&fd).is_ok_and(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
        }) {
            return Err(not_regular(name));
        }
        Ok(fd)
    }

    /// Reads `name`, at most `cap` bytes (more is an error naming the file); `None` when it
    /// does not exist.
    pub fn read(&self, name: &str, cap: u64) -> io::Result<Option<Vec<u8>>> {
        let fd = match self.open_at(OsStr::new(name), OFlags::RDONLY, 0) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        crate::readfile::read_capped(fd, cap, &self.path.join(name)).map(Some)
    }

    /// The size of `name`, or `None` when it does not exist.
    pub fn len(&self, name: &str) -> io::Result<Option<u64>> {
        match rustix::fs::statat(&self.fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(u64::try_from(st.st_size).unwrap_or(0))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends `bytes` to `name` (created `0600` if missing) in one write, and syncs it.
    pub fn append(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let fd = self.open_at(
            OsStr::new(name),
            OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE,
            0o600,
        )?;
        let mut f = std::fs::File::from(fd);
        f.write_all(bytes)?;
        f.sync_data()
    }

    /// The last byte of `name`, if it has one.
    pub fn last_byte(&self, name: &str) -> io::Result<Option<u8>> {
        use std::io::{Seek, SeekFrom};
        let fd = match self.open_at(OsStr::new(name), OFlags::RDONLY, 0) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut f = std::fs::File::from(fd);
        let len = f.metadata()?.len();
        if len == 0 {
            return Ok(None);
        }
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))?;
        f.read_exact(&mut last)?;
        Ok(Some(last[0]))
    }

    /// Replaces `name` with `bytes` (mode `mode`): written to a fresh temporary file beside it
    /// (`O_EXCL`: never one that exists), synced, renamed over it, the directory synced.
    pub fn replace(&self, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
        let mut tmp = None;
        for n in 0..100u32 {
            let candidate = format!(".{name}.{}.{n}.tmp", std::process::id());
            match rustix::fs::openat(
                &self.fd,
                candidate.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            ) {
                Ok(fd) => {
                    tmp = Some((candidate, fd));
                    break;
                }
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let Some((tmp, fd)) = tmp else {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "no free temporary name beside {}",
                    self.path.join(name).display()
                ),
            ));
        };
        let written = (|| {
            let mut f = std::fs::File::from(fd);
            // The mode asked for, whatever the umask made of it.
            rustix::fs::fchmod(f.as_fd(), Mode::from_raw_mode(mode))?;
            f.write_all(bytes)?;
            f.sync_all()?;
            rustix::fs::renameat(&self.fd, tmp.as_str(), &self.fd, name)?;
            rustix::fs::fsync(&self.fd)?;
            Ok(())
        })();
        if written.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, tmp.as_str(), rustix::fs::AtFlags::empty());
        }
        written
    }

    /// Sets `name` to mode `mode` (an older version of cachekeeper made it readable by all).
    pub fn restrict(&self, name: &str, mode: u32) -> io::Result<()> {
        match self.open_at(OsStr::new(name), OFlags::RDONLY, 0) {
            Ok(fd) => Ok(rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The directory's handle.
    #[must_use]
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Removes a socket left at `name` by a crash; fails, removing nothing, when `name` is
    /// anything else (a file, a link).
    pub fn remove_stale_socket(&self, name: &OsStr) -> io::Result<()> {
        match rustix::fs::statat(&self.fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Socket {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "it exists and is not a socket",
                    ));
                }
                Ok(rustix::fs::unlinkat(
                    &self.fd,
                    name,
                    rustix::fs::AtFlags::empty(),
                )?)
            }
            Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets the mode of `name` (no link is followed: `fchmodat` refuses one with
    /// `AT_SYMLINK_NOFOLLOW`, and only this user can put anything in the directory).
    pub fn chmod(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        let st = rustix::fs::statat(&self.fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a symlink"));
        }
        Ok(rustix::fs::chmodat(
            &self.fd,
            name,
            Mode::from_raw_mode(mode),
            rustix::fs::AtFlags::empty(),
        )?)
    }

    /// Renames `from` to `to` within the directory (a file set aside).
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        Ok(rustix::fs::renameat(&self.fd, from, &self.fd, to)?)
    }

    /// Takes an exclusive `flock` on the lock file `name` (created `0600`), waiting for it.
    pub fn lock(&self, name: &str) -> io::Result<Locked> {
        let fd = self.open_at(OsStr::new(name), OFlags::RDWR | OFlags::CREATE, 0o600)?;
        rustix::fs::flock(&fd, FlockOperation::LockExclusive)?;
        Ok(Locked { _fd: fd })
    }
}

/// Writes `bytes` to the file at `path` as [`PrivateDir::replace`] does, in its directory
/// (which must already exist, and pass [`PrivateDir::open`]'s checks).
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(OsStr::to_str)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file in a directory", path.display()),
        ));
    };
    if !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} does not exist", dir.display()),
        ));
    }
    PrivateDir::open(dir)?.replace(name, bytes, mode)
}

/// Makes the dir at `path` (mode 0700) and hands it, with the files directly in it, to
/// `uid:gid`: for an init step running as root before the daemon runs as that user (a
/// Kubernetes hostPath is created root's, `0755`, and the daemon could write nothing there).
/// Its parent must exist. Nothing is followed: the dir is opened with `O_NOFOLLOW` and each
/// entry changed through the dir's handle without following links, and a dir that belongs to
/// anyone but root or `uid` is refused, so the step never gives away what it did not make.
pub fn hand_over(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(refuse(path, "it has no parent directory"));
    };
    let parent = crate::os::safefs::open_dir(parent)?;
    match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let dir = rustix::fs::openat(
        &parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
            refuse(path, "it is a symlink or not a directory")
        }
        e => e.into(),
    })?;
    let st = rustix::fs::fstat(&dir)?;
    if st.st_uid != 0 && st.st_uid != uid {
        return Err(refuse(
            path,
            format!(
                "it belongs to uid {}, neither root nor uid {uid}",
                st.st_uid
            ),
        ));
    }
    let owner = (
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    );
    // The mode is set while we own the dir (taking it back first if need be), so an init
    // step needs no capability but CAP_CHOWN (and CAP_DAC_READ_SEARCH to read the dir again
    // on a restart).
    if st.st_mode & 0o7777 != 0o700 {
        let me = rustix::process::geteuid();
        if st.st_uid != me.as_raw() {
            rustix::fs::fchown(&dir, Some(me), None)?;
        }
        rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o700))?;
    }
    rustix::fs::fchown(&dir, owner.0, owner.1)?;
    // What a run as root left (history, last use, locks): the user must read and replace it.
    for entry in rustix::fs::Dir::read_from(&dir)? {
        let entry = entry?;
        let n = entry.file_name();
        if entry.file_type() != rustix::fs::FileType::RegularFile {
            continue;
        }
        rustix::fs::chownat(
            &dir,
            n,
            owner.0,
            owner.1,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_never_follow_a_link_and_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("state");
        let d = PrivateDir::open(&dir).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let decoy = t.path().join("decoy");
        std::fs::write(&decoy, "precious").unwrap();
        std::os::unix::fs::symlink(&decoy, dir.join("history.jsonl")).unwrap();
        assert!(d.append("history.jsonl", b"x\n").is_err());
        assert!(d.read("history.jsonl", 100).is_err());
        assert!(d.lock("history.jsonl").is_err());
        // Replacing renames a fresh file over the link: the decoy is untouched.
        d.replace("history.jsonl", b"new\n", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&decoy).unwrap(), "precious");
        assert_eq!(d.read("history.jsonl", 100).unwrap().unwrap(), b"new\n");
        let mode = std::fs::metadata(dir.join("history.jsonl"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A temporary name planted as a link is never opened.
        std::os::unix::fs::symlink(
            &decoy,
            dir.join(format!(".last-use.json.{}.0.tmp", std::process::id())),
        )
        .unwrap();
        d.replace("last-use.json", b"{}", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&decoy).unwrap(), "precious");
        // A FIFO is not read.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(d.read("fifo", 100).is_err());
        // Too large is an error naming the file.
        d.replace("big", &[b'x'; 200], 0o600).unwrap();
        let e = d.read("big", 100).unwrap_err();
        assert!(e.to_string().contains("big"), "{e}");
    }

    #[test]
    fn a_dir_others_may_write_or_a_link_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = PrivateDir::open(&open).unwrap_err();
        assert!(e.to_string().contains("others may write"), "{e}");
        let link = t.path().join("link");
        std::os::unix::fs::symlink(t.path(), &link).unwrap();
        let e = PrivateDir::open(&link).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
    }
}
