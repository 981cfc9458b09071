//! What each watched dir is, what is watched for in it, and what an event there means to the
//! build windows ([`super::builds`]) and to the index (a change).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::inotify::{ReadFlags, WatchFlags};

use super::builds::Event;
use cachekeeper_core::model::names;
use cachekeeper_sys::os::locks::LOCK_FILES;

/// A profile dir: (target dir, profile relative to it). Shared, not copied: every watch of a
/// target dir names it, and events clone these keys.
pub(super) type ProfileKey = (Arc<Path>, Arc<Path>);
/// A unit: (target dir, fingerprint dir relative to it).
pub(super) type UnitKey = (Arc<Path>, Arc<Path>);

/// Where new units appear in a profile.
#[derive(Clone, Debug)]
pub(super) enum Parent {
    /// `.fingerprint/` (legacy layout): a new dir is a new unit's fingerprint dir.
    Fingerprints,
    /// `build/` (build-dir layout): a new dir is a package's, holding its units.
    Packages,
    /// `build/<pkg>/` (build-dir layout): a new dir is a unit's, `<H>/fingerprint` inside.
    Package(String),
}

impl Parent {
    /// The fingerprint dir (relative to the target dir) of the unit whose dir is `name` here,
    /// in the profile at `profile`; `None` in `build/`, where a name is a package's.
    pub(super) fn unit(&self, profile: &Path, name: &OsStr) -> Option<PathBuf> {
        match self {
            Parent::Fingerprints => Some(profile.join(".fingerprint").join(name)),
            Parent::Package(pkg) => Some(
                profile
                    .join("build")
                    .join(pkg)
                    .join(name)
                    .join("fingerprint"),
            ),
            Parent::Packages => None,
        }
    }
}

/// A watched dir: (target dir, the dir relative to it), shared with the watch's own keys. The
/// daemon holds one per watch for as long as it runs: the absolute path is never held, only
/// joined when the kernel needs it.
pub(super) type DirKey = (Arc<Path>, Arc<Path>);

/// Whose a watched dir is.
#[derive(Clone, Debug)]
pub(super) enum Watched {
    /// A target dir itself (relative to itself, the empty path): a profile dir created or
    /// removed there changes it.
    Target(DirKey),
    Profile(ProfileKey),
    /// A dir where a build creates new units' dirs (the dir, relative to the target dir): a
    /// creation there in a build's window is that build's use of the new unit.
    Units(ProfileKey, Parent, Arc<Path>),
    Unit {
        unit: UnitKey,
        /// The profile, relative to the target dir.
        profile: Arc<Path>,
        /// A build-script run's dir (relative to the target dir), when that is the dir watched
        /// rather than the fingerprint dir.
        run: Option<Arc<Path>>,
    },
}

impl Watched {
    /// The target dir it is in.
    pub(super) fn target(&self) -> &Arc<Path> {
        match self {
            Watched::Target((t, _)) | Watched::Profile((t, _)) | Watched::Units((t, _), ..) => t,
            Watched::Unit { unit, .. } => &unit.0,
        }
    }

    /// The dir watched.
    pub(super) fn dir(&self) -> DirKey {
        match self {
            Watched::Target(key) | Watched::Profile(key) => key.clone(),
            Watched::Units((t, _), _, dir) => (t.clone(), dir.clone()),
            Watched::Unit { unit, run, .. } => {
                (unit.0.clone(), run.as_ref().unwrap_or(&unit.1).clone())
            }
        }
    }

    /// The dir watched, as the kernel is given it.
    pub(super) fn path(&self) -> PathBuf {
        let (target, rel) = self.dir();
        if rel.as_os_str().is_empty() {
            target.to_path_buf()
        } else {
            target.join(rel)
        }
    }
}

/// What an event in a watched dir means to the build windows, if anything.
pub(super) fn meaning(
    watched: &Watched,
    flags: ReadFlags,
    name: &OsStr,
) -> Option<(ProfileKey, Event<UnitKey>)> {
    let entry = name;
    let name = name.to_str().unwrap_or("");
    match watched {
        Watched::Target(_) => None,
        Watched::Units(profile, parent, _) => {
            if !flags.contains(ReadFlags::CREATE | ReadFlags::ISDIR) {
                return None;
            }
            let rel = parent.unit(&profile.1, entry)?;
            Some((
                profile.clone(),
                Event::Write((profile.0.clone(), rel.into())),
            ))
        }
        Watched::Profile(profile) => {
            if !LOCK_FILES.contains(&name) {
                return None;
            }
            let event = if flags.contains(ReadFlags::OPEN) {
                Event::LockOpen
            } else if flags.contains(ReadFlags::CLOSE_WRITE) {
                Event::LockClose { write: true }
            } else if flags.contains(ReadFlags::CLOSE_NOWRITE) {
                Event::LockClose { write: false }
            } else {
                return None;
            };
            Some((profile.clone(), event))
        }
        Watched::Unit { unit, profile, run } => {
            let run_dir = run.is_some();
            let signal = if run_dir {
                names::is_run_use_signal(name)
            } else {
                names::is_fingerprint_use_signal(name)
            };
            let event = if flags.intersects(
                ReadFlags::CREATE
                    | ReadFlags::MODIFY
                    | ReadFlags::MOVED_TO
                    | ReadFlags::CLOSE_WRITE,
            ) {
                Event::Write(unit.clone())
            } else if flags.contains(ReadFlags::OPEN) && signal {
                Event::Signal(unit.clone())
            } else if flags.contains(ReadFlags::CLOSE_NOWRITE)
                && names::is_read_by_readers_only(name, run_dir)
            {
                Event::Reader(unit.clone())
            } else {
                return None;
            };
            Some(((unit.0.clone(), profile.clone()), event))
        }
    }
}

/// What is watched for in a dir of `owner`'s (never through a symlink, directories only).
pub(super) fn watch_flags(owner: &Watched) -> WatchFlags {
    let base = WatchFlags::ONLYDIR | WatchFlags::DONT_FOLLOW;
    match owner {
        Watched::Target(_) => {
            base | WatchFlags::CREATE
                | WatchFlags::DELETE
                | WatchFlags::MOVED_FROM
                | WatchFlags::MOVED_TO
        }
        Watched::Profile(_) => {
            base | WatchFlags::OPEN | WatchFlags::CLOSE_WRITE | WatchFlags::CLOSE_NOWRITE
        }
        Watched::Units(..) => {
            base | WatchFlags::CREATE | WatchFlags::DELETE | WatchFlags::MOVED_FROM
        }
        Watched::Unit { .. } => {
            base | WatchFlags::OPEN
                | WatchFlags::CLOSE_WRITE
                | WatchFlags::CLOSE_NOWRITE
                | WatchFlags::CREATE
                | WatchFlags::MODIFY
                | WatchFlags::MOVED_TO
                | WatchFlags::DELETE
                | WatchFlags::MOVED_FROM
        }
    }
}

/// The watches by descriptor: what each watched dir is.
pub(super) type ByWd = HashMap<i32, Watched>;
/// The watches by dir.
pub(super) type ByDir = HashMap<DirKey, i32>;

/// The watches (by descriptor) with every path moved into a fresh allocation, each shared as
/// before, and the index by dir made again: see `Tracker::rehome`.
///
/// The old watches are dropped only once every new one is made. Freed as the move went, each
/// old path would be handed straight back (the allocator reuses a chunk just freed for the next
/// of its size) and the new paths would lie where the old ones did, scattered one to a page.
pub(super) fn rehomed(old: ByWd) -> (ByWd, ByDir) {
    // Each path once, as before: keyed by the allocation it is moved from.
    let mut fresh: HashMap<usize, Arc<Path>> = HashMap::new();
    let mut again = |a: &Arc<Path>| -> Arc<Path> {
        fresh
            .entry(Arc::as_ptr(a).cast::<u8>() as usize)
            .or_insert_with(|| Arc::from(&**a))
            .clone()
    };
    let mut by_wd = HashMap::with_capacity(old.len());
    let mut by_dir = HashMap::with_capacity(old.len());
    for (&wd, w) in &old {
        let w = match w {
            Watched::Target((t, rel)) => Watched::Target((again(t), again(rel))),
            Watched::Profile((t, p)) => Watched::Profile((again(t), again(p))),
            Watched::Units((t, p), parent, dir) => {
                Watched::Units((again(t), again(p)), parent.clone(), again(dir))
            }
            Watched::Unit { unit, profile, run } => Watched::Unit {
                unit: (again(&unit.0), again(&unit.1)),
                profile: again(profile),
                run: run.as_ref().map(&mut again),
            },
        };
        by_dir.insert(w.dir(), wd);
        by_wd.insert(wd, w);
    }
    drop(old);
    (by_wd, by_dir)
}
