//! Removing one path below a target dir, or dry-running its removal: the same walk either way,
//! where only the final `unlinkat` depends on the [`Mode`], so a dry run counts what a real run
//! frees.
//!
//! Invariants:
//! - Everything is relative to open directory fds, opened one component at a time with
//!   `O_NOFOLLOW`: a symlink is unlinked as a link, never followed, and a path far beyond
//!   `PATH_MAX` is no different from a short one.
//! - Iterative, depth-unbounded, with a bounded number of open descriptors: only the last
//!   [`OPEN_WINDOW`] directories of the current branch stay open; climbing back above them
//!   reopens the parent as `..` of the child and checks it is the directory that was entered
//!   (a tree moved meanwhile stops the removal).
//! - It never enters or removes anything on another mount than the target dir's (another
//!   filesystem, or a bind mount of the same one): such an entry is kept and reported, and so
//!   are the directories holding it.
//! - A missing entry is not an error (a build or `cargo clean` may race us).

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::AtFlags;

use crate::os::safefs::{self, Meta};
use cachekeeper_core::model::Mode;

/// How many directories of the branch being removed stay open.
const OPEN_WINDOW: usize = 16;

/// Counts what is freed: an inode's blocks once its last link is gone.
#[derive(Default)]
pub(crate) struct Tally {
    pub freed: u64,
    pub files: u64,
    /// Links still to go, for inodes with several.
    links_left: HashMap<(u64, u64), u64>,
}

impl Tally {
    fn unlinked(&mut self, meta: &Meta) {
        self.files += 1;
        let key = (meta.dev, meta.ino);
        let last = if let Some(left) = self.links_left.get_mut(&key) {
            *left = left.saturating_sub(1);
            *left == 0
        } else if meta.nlink <= 1 {
            true
        } else {
            self.links_left.insert(key, meta.nlink - 1);
            false
        };
        if last {
            self.freed = self.freed.saturating_add(meta.bytes);
        }
    }

    fn dir_removed(&mut self, meta: &Meta) {
        self.files += 1;
        self.freed = self.freed.saturating_add(meta.bytes);
    }
}

/// A directory being emptied.
struct Frame {
    /// Its name in its parent.
    name: CString,
    /// As it was stat-ed before it was entered: its identity.
    meta: Meta,
    /// Open while it is among the last [`OPEN_WINDOW`] of the branch.
    fd: Option<OwnedFd>,
    /// Entries still to remove.
    entries: Vec<CString>,
    /// Something below stays (a mount, an error): it is not removed itself.
    keep: bool,
}

pub(crate) struct Remover<'a> {
    pub mode: Mode,
    pub tally: &'a mut Tally,
    /// The target dir: nothing on another mount is entered.
    pub root: Meta,
    pub errors: Vec<String>,
    /// Mount points found inside what was removed, kept with the directories holding them.
    pub mounts: Vec<PathBuf>,
}

impl<'a> Remover<'a> {
    #[must_use]
    pub fn new(mode: Mode, tally: &'a mut Tally, root: Meta) -> Remover<'a> {
        Remover {
            mode,
            tally,
            root,
            errors: Vec::new(),
            mounts: Vec::new(),
        }
    }

    fn fail(&mut self, rel: &Path, what: &str, e: &io::Error) {
        if !safefs::is_vanished(e) {
            self.errors.push(format!("{}: {what}: {e}", rel.display()));
        }
    }

    /// Removes `rel` (relative to the target dir open as `root`) and everything below it.
    pub(crate) fn remove_path(&mut self, root: BorrowedFd<'_>, rel: &Path) {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return;
        };
        match safefs::open_rel_dir(root, parent) {
            Ok(dir) => self.remove_entry(dir.as_fd(), name, rel),
            Err(e) => self.fail(rel, "open parent", &e),
        }
    }

    /// The one place the mode matters.
    fn apply(&self, dir: BorrowedFd<'_>, name: &CStr, flags: AtFlags) -> io::Result<()> {
        match self.mode {
            Mode::DryRun => Ok(()),
            Mode::Execute => Ok(rustix::fs::unlinkat(dir, name, flags)?),
        }
    }

    /// Opens directory `name` of `parent`, checking it is the one `meta` describes.
    fn enter(
        &mut self,
        parent: BorrowedFd<'_>,
        name: CString,
        meta: Meta,
        rel: &Path,
    ) -> Option<Frame> {
        let fd = match safefs::open_dir_at(parent, &name) {
            Ok(fd) => fd,
            Err(e) => {
                self.fail(rel, "open", &e);
                return None;
            }
        };
        match safefs::stat_fd(fd.as_fd()) {
            Ok(m) if (m.dev, m.ino) == (meta.dev, meta.ino) => {}
            Ok(_) => {
                self.errors.push(format!(
                    "{}: replaced while being removed; left alone",
                    rel.display()
                ));
                return None;
            }
            Err(e) => {
                self.fail(rel, "stat", &e);
                return None;
            }
        }
        let entries = match rustix::fs::Dir::read_from(fd.as_fd()) {
            Ok(d) => d
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_owned())
                .filter(|n| n.as_c_str() != c"." && n.as_c_str() != c"..")
                .collect(),
            Err(e) => {
                self.fail(rel, "list", &e.into());
                return None;
            }
        };
        Some(Frame {
            name,
            meta,
            fd: Some(fd),
            entries,
            keep: false,
        })
    }

    /// The path of entry `name` of the deepest frame, for messages.
    fn rel_of(top: &Path, stack: &[Frame], name: Option<&CStr>) -> PathBuf {
        let mut rel = top.to_path_buf();
        for f in stack.iter().skip(1) {
            rel.push(OsStr::from_bytes(f.name.to_bytes()));
        }
        if let Some(n) = name {
            rel.push(OsStr::from_bytes(n.to_bytes()));
        }
        rel
    }

    /// Removes entry `name` of the directory open as `base` (whose path is `rel`'s parent).
    fn remove_entry(&mut self, base: BorrowedFd<'_>, name: &OsStr, rel: &Path) {
        let Ok(cname) = CString::new(name.as_bytes()) else {
            return;
        };
        let meta = match safefs::stat_at_c(base, &cname) {
            Ok(m) => m,
            Err(e) => return self.fail(rel, "stat", &e),
        };
        if !meta.same_mount(&self.root) {
            self.mounts.push(rel.to_path_buf());
            return;
        }
        if meta.kind != safefs::Kind::Dir {
            match self.apply(base, &cname, AtFlags::empty()) {
                Ok(()) => self.tally.unlinked(&meta),
                Err(e) => self.fail(rel, "remove", &e),
            }
            return;
        }
        let Some(first) = self.enter(base, cname, meta, rel) else {
            return;
        };
        let mut stack = vec![first];
        while let Some(top) = stack.last_mut() {
            match top.entries.pop() {
                Some(child) => self.step(&mut stack, child, rel),
                None => {
                    if !self.climb(&mut stack, base, rel) {
                        return;
                    }
                }
            }
        }
    }

    /// Removes entry `child` of the deepest frame, or enters it.
    fn step(&mut self, stack: &mut Vec<Frame>, child: CString, rel: &Path) {
        enum Step {
            Gone,
            Kept,
            Entered(Frame),
            Unlinked(Meta),
        }
        let n = stack.len();
        let step = {
            // The deepest frame is always open.
            let Some(dir) = stack[n - 1].fd.as_ref().map(AsFd::as_fd) else {
                return;
            };
            let r = Self::rel_of(rel, stack, Some(&child));
            match safefs::stat_at_c(dir, &child) {
                Err(e) if safefs::is_vanished(&e) => Step::Gone,
                Err(e) => {
                    self.fail(&r, "stat", &e);
                    Step::Kept
                }
                Ok(m) if !m.same_mount(&self.root) => {
                    self.mounts.push(r);
                    Step::Kept
                }
                Ok(m) if m.kind == safefs::Kind::Dir => match self.enter(dir, child, m, &r) {
                    Some(frame) => Step::Entered(frame),
                    None => Step::Kept,
                },
                Ok(m) => match self.apply(dir, &child, AtFlags::empty()) {
                    Ok(()) => Step::Unlinked(m),
                    Err(e) if safefs::is_vanished(&e) => Step::Gone,
                    Err(e) => {
                        self.fail(&r, "remove", &e);
                        Step::Kept
                    }
                },
            }
        };
        match step {
            Step::Gone => {}
            Step::Kept => stack[n - 1].keep = true,
            Step::Unlinked(m) => self.tally.unlinked(&m),
            Step::Entered(frame) => {
                stack.push(frame);
                if stack.len() > OPEN_WINDOW {
                    let close = stack.len() - OPEN_WINDOW - 1;
                    stack[close].fd = None;
                }
            }
        }
    }

    /// The deepest frame is done: removes it from its parent (unless something in it stays).
    /// `false` when the removal must stop (the tree moved under us).
    fn climb(&mut self, stack: &mut Vec<Frame>, base: BorrowedFd<'_>, rel: &Path) -> bool {
        let Some(done) = stack.pop() else {
            return true;
        };
        if !self.reopen_parent(stack, &done, rel) {
            return false;
        }
        if done.keep {
            if let Some(p) = stack.last_mut() {
                p.keep = true;
            }
            return true;
        }
        let removed = {
            let parent = match stack.last() {
                Some(p) => p.fd.as_ref().map(AsFd::as_fd),
                None => Some(base),
            };
            let Some(parent) = parent else { return false };
            self.apply(parent, &done.name, AtFlags::REMOVEDIR)
        };
        match removed {
            Ok(()) => self.tally.dir_removed(&done.meta),
            Err(e) => {
                if !safefs::is_vanished(&e)
                    && let Some(p) = stack.last_mut()
                {
                    p.keep = true;
                }
                let mut r = Self::rel_of(rel, stack, None);
                if !stack.is_empty() {
                    r.push(OsStr::from_bytes(done.name.to_bytes()));
                }
                self.fail(&r, "remove dir", &e);
            }
        }
        true
    }

    /// Makes sure the new deepest frame (the parent of `done`) is open, reopening it as `..`
    /// of `done` and checking it is the directory that was entered. `false` (with the error
    /// recorded) when the tree moved under us: the removal stops there.
    fn reopen_parent(&mut self, stack: &mut [Frame], done: &Frame, rel: &Path) -> bool {
        let Some(parent) = stack.last_mut() else {
            return true;
        };
        if parent.fd.is_some() {
            return true;
        }
        let Some(child) = done.fd.as_ref() else {
            return false;
        };
        let reopened = safefs::open_dir_at(child.as_fd(), c"..").and_then(|fd| {
            let m = safefs::stat_fd(fd.as_fd())?;
            Ok(((m.dev, m.ino) == (parent.meta.dev, parent.meta.ino)).then_some(fd))
        });
        match reopened {
            Ok(Some(fd)) => {
                parent.fd = Some(fd);
                true
            }
            Ok(None) => {
                let r = Self::rel_of(rel, stack, None);
                self.errors.push(format!(
                    "{}: moved while being removed; left alone",
                    r.display()
                ));
                false
            }
            Err(e) => {
                let r = Self::rel_of(rel, stack, None);
                self.fail(&r, "reopen", &e);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn meta(ino: u64, nlink: u64, bytes: u64) -> Meta {
        Meta {
            dev: 1,
            mnt: None,
            ino,
            nlink,
            uid: 0,
            apparent: bytes,
            bytes,
            atime: SystemTime::UNIX_EPOCH,
            mtime: SystemTime::UNIX_EPOCH,
            ctime: SystemTime::UNIX_EPOCH,
            kind: safefs::Kind::File,
        }
    }

    #[test]
    fn an_inode_counts_when_its_last_link_goes_in_both_modes() {
        // Dry run: the link count stays 2 on the second stat.
        let mut dry = Tally::default();
        dry.unlinked(&meta(5, 2, 100));
        assert_eq!(dry.freed, 0);
        dry.unlinked(&meta(5, 2, 100));
        assert_eq!(dry.freed, 100);
        // Real run: the kernel shows the count dropping.
        let mut real = Tally::default();
        real.unlinked(&meta(5, 2, 100));
        real.unlinked(&meta(5, 1, 100));
        assert_eq!(real.freed, 100);
    }

    /// Nested `depth` dirs below `top`, with a file at the bottom, made fd-relative (the path
    /// is far longer than PATH_MAX).
    fn deep(top: &Path, depth: usize) {
        std::fs::create_dir(top).unwrap();
        let mut fd = safefs::open_dir(top).unwrap();
        for _ in 0..depth {
            rustix::fs::mkdirat(&fd, c"dddddddddddddddddddddddddddddddd", 0o755.into()).unwrap();
            fd = safefs::open_dir_at(fd.as_fd(), c"dddddddddddddddddddddddddddddddd").unwrap();
        }
        let f = rustix::fs::openat(
            &fd,
            c"leaf",
            rustix::fs::OFlags::CREATE | rustix::fs::OFlags::WRONLY,
            0o644.into(),
        )
        .unwrap();
        rustix::io::write(&f, b"x").unwrap();
    }

    #[test]
    fn a_tree_deeper_than_path_max_goes_with_few_descriptors_in_both_modes() {
        let t = tempfile::tempdir().unwrap();
        deep(&t.path().join("top"), 5000);
        let root = safefs::open_dir(t.path()).unwrap();
        let root_meta = safefs::stat_fd(root.as_fd()).unwrap();
        let mut dry = Tally::default();
        let mut r = Remover::new(Mode::DryRun, &mut dry, root_meta);
        r.remove_path(root.as_fd(), Path::new("top"));
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(t.path().join("top").exists());
        let mut real = Tally::default();
        let mut r = Remover::new(Mode::Execute, &mut real, root_meta);
        r.remove_path(root.as_fd(), Path::new("top"));
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(!t.path().join("top").exists());
        assert_eq!((dry.files, dry.freed), (real.files, real.freed));
        assert_eq!(real.files, 5002);
    }
}
