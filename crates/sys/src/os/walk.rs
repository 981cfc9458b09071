//! A parallel directory walker that stats every entry once, relative to its parent's fd.
//!
//! The walker knows nothing about cargo: a [`Visitor`] classifies each entry, accounts for it
//! in a per-thread accumulator, and says whether to descend. Errors (an entry that vanished, a
//! directory we may not read) are handed to the visitor as values; the walk never aborts.
//!
//! Performance: each directory is read with `getdents64` into a per-thread buffer (no
//! allocation per entry), every entry is `statx`-ed against the open directory (no path
//! resolution), and threads take directories from a shared LIFO stack. Memory is flat in the
//! number of files: nothing per file is kept here.
//!
//! Open descriptors stay bounded at any depth: a pending directory holds its parent open only
//! in the first [`DIRECT_DEPTH`] levels; below, it holds an ancestor every [`ANCHOR_EVERY`]
//! levels and is opened from there one component at a time. Nothing recurses.
//!
//! Invariants: symlinks are never followed (`AT_SYMLINK_NOFOLLOW`, `O_NOFOLLOW`); nothing on
//! another mount than the root's (another filesystem, or a bind mount) is entered or
//! accounted: the visitor is told of the mount point instead.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use std::mem::MaybeUninit;

use rustix::fs::RawDir;

use crate::os::safefs::{self, Meta};

pub trait Visitor: Sync {
    /// What the visitor knows about a directory from its ancestors.
    type Ctx: Send;
    /// Per-thread results, merged by the caller.
    type Acc: Send;

    fn new_acc(&self) -> Self::Acc;

    /// Accounts for entry `name` of the directory `dir_rel` (open as `dirfd`, with context
    /// `parent`). Returns the context to descend with, for a directory to walk into.
    fn entry(
        &self,
        acc: &mut Self::Acc,
        parent: &Self::Ctx,
        dir_rel: &Path,
        dirfd: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
    ) -> Option<Self::Ctx>;

    /// Whether entry `name` of the directory `dir_rel` (with context `parent`) is passed over
    /// before it is looked at: not stat-ed, accounted or entered (the visitor knows what it
    /// holds from an earlier walk).
    fn skip(
        &self,
        _acc: &mut Self::Acc,
        _parent: &Self::Ctx,
        _dir_rel: &Path,
        _name: &OsStr,
    ) -> bool {
        false
    }

    /// An entry at `rel` could not be read or opened.
    fn error(&self, acc: &mut Self::Acc, rel: &Path, err: &io::Error);

    /// The entry at `rel` (in a directory with context `parent`) is on another mount: it is
    /// neither entered nor accounted.
    fn mount_point(&self, acc: &mut Self::Acc, parent: &Self::Ctx, rel: &Path);
}

/// Levels in which a pending directory keeps its own parent open.
const DIRECT_DEPTH: usize = 64;
/// Below [`DIRECT_DEPTH`], how far apart the ancestors kept open are.
const ANCHOR_EVERY: usize = 64;

struct Job<C> {
    /// An open ancestor (`None`: this is the root), and the names from it down to this dir.
    anchor: Option<Arc<OwnedFd>>,
    from_anchor: Vec<CString>,
    depth: usize,
    rel: PathBuf,
    ctx: C,
}

struct Queue<C> {
    jobs: Vec<Job<C>>,
    active: usize,
}

/// How many threads to walk with: `$CACHEKEEPER_THREADS`, else the CPU count (at most 8).
#[must_use]
pub(crate) fn default_threads() -> usize {
    std::env::var("CACHEKEEPER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(2, std::num::NonZero::get)
                .clamp(1, 8)
        })
}

/// Walks everything below the directory open as `root` (the root itself is not visited),
/// returning one accumulator per thread.
pub fn walk<V: Visitor>(
    visitor: &V,
    root: OwnedFd,
    root_ctx: V::Ctx,
    threads: usize,
) -> Vec<V::Acc> {
    let queue = Mutex::new(Queue {
        jobs: Vec::new(),
        active: 0,
    });
    let wake = Condvar::new();
    // The root is already open: whoever takes the first job reads it.
    let first = Job {
        anchor: None,
        from_anchor: Vec::new(),
        depth: 0,
        rel: PathBuf::new(),
        ctx: root_ctx,
    };
    let Ok(root_meta) = safefs::stat_fd(root.as_fd()) else {
        return vec![visitor.new_acc()];
    };
    queue
        .lock()
        .expect("walker queue lock is never poisoned: workers do not panic while holding it")
        .jobs
        .push(first);
    let root_dir = Mutex::new(Some(root));

    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut acc = visitor.new_acc();
                    worker(visitor, &mut acc, &queue, &wake, &root_dir, &root_meta);
                    acc
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("walker threads do not panic"))
            .collect()
    })
}

/// Size of the `getdents64` buffer each thread reads directories into.
const DIRENT_BUF: usize = 64 * 1024;

fn worker<V: Visitor>(
    visitor: &V,
    acc: &mut V::Acc,
    queue: &Mutex<Queue<V::Ctx>>,
    wake: &Condvar,
    root_dir: &Mutex<Option<OwnedFd>>,
    root_meta: &Meta,
) {
    let mut found = Vec::new();
    let mut buf: Vec<MaybeUninit<u8>> = vec![MaybeUninit::uninit(); DIRENT_BUF];
    loop {
        let job = {
            let mut q = queue.lock().expect("walker queue lock is never poisoned");
            loop {
                if let Some(job) = q.jobs.pop() {
                    q.active += 1;
                    break Some(job);
                }
                if q.active == 0 {
                    break None;
                }
                q = wake.wait(q).expect("walker queue lock is never poisoned");
            }
        };
        let Some(job) = job else {
            wake.notify_all();
            return;
        };
        let dir = match &job.anchor {
            None => root_dir.lock().expect("never poisoned").take(),
            Some(anchor) => open_from(anchor.as_fd(), &job.from_anchor)
                .map_err(|e| visitor.error(acc, &job.rel, &e))
                .ok(),
        };
        if let Some(dir) = dir {
            let seen = Seen { root: root_meta };
            read_dir(
                visitor,
                acc,
                Arc::new(dir),
                &job,
                &mut buf,
                &mut found,
                seen,
            );
        }
        let mut q = queue.lock().expect("walker queue lock is never poisoned");
        q.active -= 1;
        let pushed = !found.is_empty();
        q.jobs.append(&mut found);
        drop(q);
        if pushed {
            wake.notify_all();
        } else {
            wake.notify_one();
        }
    }
}

/// Opens the directory `names` leads to from `anchor`, one component at a time.
fn open_from(anchor: BorrowedFd<'_>, names: &[CString]) -> io::Result<OwnedFd> {
    let mut fd: Option<OwnedFd> = None;
    for name in names {
        let next = safefs::open_dir_at(fd.as_ref().map_or(anchor, AsFd::as_fd), name)?;
        fd = Some(next);
    }
    fd.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty path"))
}

/// What every directory of a walk is compared with.
#[derive(Clone, Copy)]
struct Seen<'a> {
    root: &'a Meta,
}

fn read_dir<V: Visitor>(
    visitor: &V,
    acc: &mut V::Acc,
    dir: Arc<OwnedFd>,
    job: &Job<V::Ctx>,
    buf: &mut [MaybeUninit<u8>],
    found: &mut Vec<Job<V::Ctx>>,
    seen: Seen<'_>,
) {
    let dirfd = dir.as_fd();
    let mut entries = RawDir::new(dirfd, buf);
    while let Some(entry) = entries.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                visitor.error(acc, &job.rel, &e.into());
                return;
            }
        };
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let os = OsStr::from_bytes(name.to_bytes());
        if visitor.skip(acc, &job.ctx, &job.rel, os) {
            continue;
        }
        match safefs::stat_at_c(dirfd, name) {
            Ok(meta) if !meta.same_mount(seen.root) => {
                visitor.mount_point(acc, &job.ctx, &job.rel.join(os));
            }
            Ok(meta) => {
                if let Some(ctx) = visitor.entry(acc, &job.ctx, &job.rel, dirfd, os, &meta)
                    && meta.kind == safefs::Kind::Dir
                {
                    // Shallow: hold the parent. Deep: hold an ancestor every ANCHOR_EVERY levels.
                    let (anchor, from_anchor) =
                        if job.depth < DIRECT_DEPTH || job.depth % ANCHOR_EVERY == 0 {
                            (Arc::clone(&dir), vec![name.to_owned()])
                        } else {
                            let mut path = job.from_anchor.clone();
                            path.push(name.to_owned());
                            let anchor = job
                                .anchor
                                .as_ref()
                                .map_or_else(|| Arc::clone(&dir), Arc::clone);
                            (anchor, path)
                        };
                    found.push(Job {
                        anchor: Some(anchor),
                        from_anchor,
                        depth: job.depth + 1,
                        rel: job.rel.join(os),
                        ctx,
                    });
                }
            }
            Err(e) => visitor.error(acc, &job.rel.join(os), &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Counts files and bytes per top-level directory, and errors.
    struct Count;
    impl Visitor for Count {
        type Ctx = String;
        type Acc = (BTreeMap<String, (u64, u64)>, Vec<PathBuf>);
        fn new_acc(&self) -> Self::Acc {
            Default::default()
        }
        fn entry(
            &self,
            acc: &mut Self::Acc,
            parent: &String,
            _dir_rel: &Path,
            _dirfd: BorrowedFd<'_>,
            name: &OsStr,
            meta: &Meta,
        ) -> Option<String> {
            let top = if parent.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                parent.clone()
            };
            let e = acc.0.entry(top.clone()).or_default();
            e.0 += 1;
            if meta.kind != safefs::Kind::Dir {
                e.1 += meta.apparent;
            }
            Some(top)
        }
        fn error(&self, acc: &mut Self::Acc, rel: &Path, _err: &io::Error) {
            acc.1.push(rel.to_path_buf());
        }
        fn mount_point(&self, acc: &mut Self::Acc, _parent: &String, rel: &Path) {
            acc.1.push(rel.to_path_buf());
        }
    }

    #[test]
    fn walks_everything_once_without_following_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        for i in 0..50 {
            let d = t.path().join(format!("a/{}/{}", i % 7, i));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("f"), vec![0u8; 10]).unwrap();
        }
        std::fs::create_dir(t.path().join("b")).unwrap();
        std::fs::write(outside.path().join("big"), vec![0u8; 1000]).unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("b/link")).unwrap();

        for threads in [1, 4] {
            let accs = walk(
                &Count,
                safefs::open_dir(t.path()).unwrap(),
                String::new(),
                threads,
            );
            let mut total: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for (m, errs) in accs {
                assert!(errs.is_empty());
                for (k, (n, b)) in m {
                    let e = total.entry(k).or_default();
                    e.0 += n;
                    e.1 += b;
                }
            }
            // a: itself, 7 dirs, 50 dirs, 50 files
            assert_eq!(total["a"].0, 1 + 7 + 50 + 50);
            // b: itself and the link (never the 1000-byte file behind it)
            assert_eq!(total["b"].0, 2);
            assert!(total["b"].1 < 1000);
        }
    }

    #[test]
    fn unreadable_dirs_are_reported_not_fatal() {
        if rustix::process::geteuid().is_root() {
            // root reads any directory; the permission case is covered by the CLI tests
            // that drop privileges.
            return;
        }
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("locked/inner")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            t.path().join("locked"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        let accs = walk(
            &Count,
            safefs::open_dir(t.path()).unwrap(),
            String::new(),
            2,
        );
        std::fs::set_permissions(
            t.path().join("locked"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let errors: Vec<_> = accs.into_iter().flat_map(|a| a.1).collect();
        assert_eq!(errors, vec![PathBuf::from("locked")]);
    }
}
