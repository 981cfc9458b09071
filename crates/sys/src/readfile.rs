//! Reading a file cachekeeper did not write (a config, docker's config, a project's files): a
//! regular file only, never through a symlink at the end, opened without blocking (a FIFO at
//! the path would hang a blocking open) and read to a cap (a `/dev/zero` or a huge file is an
//! error, not a reason to run out of memory).

use std::io::{self, Read};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

/// What a path turned out to be, in words, when it is not a regular file.
#[must_use]
pub fn kind(t: FileType) -> &'static str {
    match t {
        FileType::Fifo => "a FIFO",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Socket => "a socket",
        _ => "not a regular file",
    }
}

/// The bytes of the regular file at `path`, at most `cap` of them; `Ok(None)` when there is
/// nothing at the path. A symlink at the end of the path is followed only when
/// `follow_link` (a config path a user set up as a link to their dotfiles).
pub fn read(path: &Path, cap: u64, follow_link: bool) -> io::Result<Option<Vec<u8>>> {
    let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    if !follow_link {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(rustix::io::Errno::LOOP) if !follow_link => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is a symlink, not a regular file", path.display()),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let st = rustix::fs::fstat(&fd)?;
    let t = FileType::from_raw_mode(st.st_mode);
    if t != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is {}, not a regular file", path.display(), kind(t)),
        ));
    }
    read_capped(fd, cap, path).map(Some)
}

/// Reads the open file `fd` to its end, at most `cap` bytes: more is an error naming `path`
/// (`ErrorKind::FileTooLarge`), never a reason to run out of memory.
pub fn read_capped(fd: std::os::fd::OwnedFd, cap: u64, path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(cap.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("{} is larger than {cap} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_only_and_never_more_than_the_cap() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, "abc").unwrap();
        assert_eq!(read(&f, 10, false).unwrap().unwrap(), b"abc");
        assert!(read(&f, 2, false).is_err());
        assert!(
            read(&t.path().join("missing"), 10, false)
                .unwrap()
                .is_none()
        );
        let e = read(Path::new("/dev/zero"), 10, true).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            t.path().join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = read(&t.path().join("fifo"), 10, true).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        std::os::unix::fs::symlink(&f, t.path().join("link")).unwrap();
        assert!(read(&t.path().join("link"), 10, false).is_err());
        assert_eq!(
            read(&t.path().join("link"), 10, true).unwrap().unwrap(),
            b"abc"
        );
    }
}
