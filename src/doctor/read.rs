//! How `doctor` reads the files it inspects: they are the project's, and may be anything.
//!
//! - Only inside the roots doctor was given: a Compose file may name any path
//!   (`dockerfile: /etc/shadow`, `context: /`), and one outside the roots is a finding, never
//!   read or walked ([`inside`]; symlinks are resolved before the check).
//! - Only regular files, never through a symlink at the end, opened without blocking (a FIFO
//!   named as a Dockerfile would hang a blocking open), and at most [`MAX_FILE`] bytes (a
//!   `/dev/zero` or a 50 MB file is refused by name, not read into memory).
//! - Everything shown of a file's content goes through [`cachekeeper_core::units::printable`] in the views'
//!   renderers, so no byte of it reaches a terminal raw.

use std::path::{Path, PathBuf};

/// The largest file doctor reads (a real Dockerfile, Compose file or `.dockerignore` is a few
/// KiB).
pub const MAX_FILE: u64 = 1 << 20;

/// Why a file was not read.
#[derive(Debug)]
pub enum Refused {
    /// Outside the roots doctor looks at.
    Outside,
    /// Not a regular file (a FIFO, a device, a directory, a symlink).
    NotRegular(&'static str),
    /// Larger than [`MAX_FILE`].
    TooLarge,
    Io(std::io::Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Outside => f.write_str("it lies outside the roots doctor looks at"),
            Refused::NotRegular(what) => write!(f, "it is {what}, not a regular file"),
            Refused::TooLarge => write!(
                f,
                "it is larger than {} (doctor reads files up to that size)",
                cachekeeper_core::units::human_bytes(MAX_FILE)
            ),
            Refused::Io(e) => write!(f, "{e}"),
        }
    }
}

/// `path` with symlinks resolved as far as it exists, the rest taken lexically.
fn resolved(path: &Path) -> PathBuf {
    let lexical = super::lexical(path);
    if let Ok(real) = std::fs::canonicalize(&lexical) {
        return real;
    }
    // Resolve the longest existing ancestor, keep the rest as written.
    let mut rest = Vec::new();
    let mut at = lexical.as_path();
    while let Some(parent) = at.parent() {
        if let Some(name) = at.file_name() {
            rest.push(name.to_os_string());
        }
        if let Ok(real) = std::fs::canonicalize(parent) {
            let mut out = real;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        at = parent;
    }
    lexical
}

/// Whether `path` lies inside one of `roots` (both with symlinks resolved).
#[must_use]
pub fn inside(path: &Path, roots: &[PathBuf]) -> bool {
    let p = resolved(path);
    roots.iter().any(|r| p.starts_with(resolved(r)))
}

/// Reads `path` if it is a regular file inside `roots`, of at most [`MAX_FILE`] bytes. Bytes
/// that are not UTF-8 are replaced (the parsers want text; the views escape what they show).
pub fn read(path: &Path, roots: &[PathBuf]) -> Result<String, Refused> {
    use rustix::fs::{Mode, OFlags};
    if !inside(path, roots) {
        return Err(Refused::Outside);
    }
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::LOOP => Refused::NotRegular("a symlink"),
        e => Refused::Io(e.into()),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Refused::Io(e.into()))?;
    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
    if kind != rustix::fs::FileType::RegularFile {
        return Err(Refused::NotRegular(cachekeeper_sys::readfile::kind(kind)));
    }
    let bytes = cachekeeper_sys::readfile::read_capped(fd, MAX_FILE, path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::FileTooLarge {
            Refused::TooLarge
        } else {
            Refused::Io(e)
        }
    })?;
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_small_files_inside_the_roots_are_read() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let roots = vec![root.clone()];
        std::fs::write(root.join("Dockerfile"), "FROM scratch\n").unwrap();
        assert_eq!(
            read(&root.join("Dockerfile"), &roots).unwrap(),
            "FROM scratch\n"
        );
        std::fs::write(t.path().join("secret"), "root:x:0:0\n").unwrap();
        assert!(matches!(
            read(&t.path().join("secret"), &roots),
            Err(Refused::Outside)
        ));
        assert!(matches!(
            read(&root.join("../secret"), &roots),
            Err(Refused::Outside)
        ));
        std::os::unix::fs::symlink(t.path().join("secret"), root.join("link")).unwrap();
        assert!(matches!(
            read(&root.join("link"), &roots),
            Err(Refused::Outside)
        ));
        std::os::unix::fs::symlink(root.join("Dockerfile"), root.join("inner")).unwrap();
        assert!(matches!(
            read(&root.join("inner"), &roots),
            Err(Refused::NotRegular(_))
        ));
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(
            read(&root.join("fifo"), &roots),
            Err(Refused::NotRegular("a FIFO"))
        ));
        assert!(matches!(
            read(Path::new("/dev/zero"), &[PathBuf::from("/")]),
            Err(Refused::NotRegular(_))
        ));
        std::fs::write(root.join("big"), vec![b'x'; MAX_FILE as usize + 1]).unwrap();
        assert!(matches!(
            read(&root.join("big"), &roots),
            Err(Refused::TooLarge)
        ));
        assert!(inside(&root.join("not-yet/Dockerfile"), &roots));
        assert!(!inside(Path::new("/"), &roots));
    }
}
