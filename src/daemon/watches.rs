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

/// Whose a watched dir is.
#[derive(Clone, Debug)]
pub(super) enum Watched {
    /// A target dir itself: a profile dir created or removed there changes it.
    Target(Arc<Path>),
    Profile(ProfileKey),
    /// A dir where a build creates new units' dirs: a creation there in a build's window is
    /// that build's use of the new unit.
    Units(ProfileKey, Parent),
    Unit {
        unit: UnitKey,
        profile: ProfileKey,
        /// A build-script run's dir, rather than a fingerprint dir.
        run_dir: bool,
    },
}

impl Watched {
    /// The target dir it is in.
    pub(super) fn target(&self) -> &Path {
        match self {
            Watched::Target(t) | Watched::Profile((t, _)) | Watched::Units((t, _), _) => t,
            Watched::Unit { unit, .. } => &unit.0,
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
        Watched::Units(profile, parent) => {
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
        Watched::Unit {
            unit,
            profile,
            run_dir,
        } => {
            let signal = if *run_dir {
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
                && names::is_read_by_readers_only(name, *run_dir)
            {
                Event::Reader(unit.clone())
            } else {
                return None;
            };
            Some((profile.clone(), event))
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

/// The watches by descriptor: each watched dir and what it is.
pub(super) type ByWd = HashMap<i32, (Arc<Path>, Watched)>;
/// The watches by dir.
pub(super) type ByDir = HashMap<Arc<Path>, i32>;

/// The watches (by descriptor) with every path moved into a fresh allocation, each shared as
/// before, and the index by dir made again: see `Tracker::rehome`.
pub(super) fn rehomed(old: ByWd) -> (ByWd, ByDir) {
    // Each path once, as before: keyed by the allocation it is moved from.
    let mut fresh: HashMap<usize, Arc<Path>> = HashMap::new();
    let mut again = |a: &Arc<Path>| -> Arc<Path> {
        fresh
            .entry(Arc::as_ptr(a).cast::<u8>() as usize)
            .or_insert_with(|| Arc::from(a.to_path_buf()))
            .clone()
    };
    let mut by_wd = HashMap::with_capacity(old.len());
    let mut by_dir = HashMap::with_capacity(old.len());
    for (wd, (dir, w)) in old {
        let dir = again(&dir);
        let w = match w {
            Watched::Target(t) => Watched::Target(again(&t)),
            Watched::Profile((t, p)) => Watched::Profile((again(&t), again(&p))),
            Watched::Units((t, p), parent) => Watched::Units((again(&t), again(&p)), parent),
            Watched::Unit {
                unit,
                profile,
                run_dir,
            } => Watched::Unit {
                unit: (again(&unit.0), again(&unit.1)),
                profile: (again(&profile.0), again(&profile.1)),
                run_dir,
            },
        };
        by_dir.insert(dir.clone(), wd);
        by_wd.insert(wd, (dir, w));
    }
    (by_wd, by_dir)
}
