//! What each watched dir is, what is watched for in it, and what an event there means to the
//! build windows ([`super::builds`]) and to the index (a change).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
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

/// A path relative to a target dir, held in the tracker's [`Rels`]: where its bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Rel {
    at: u32,
    len: u32,
}

/// The relative paths of the units' watched dirs, side by side in one buffer.
///
/// The daemon holds one per unit (two for a build-script run) for as long as it runs. As
/// 10,000 separate allocations, each made among a walk's freed buffers, they kept about 1,200
/// pages resident at 10,000 units (4.7 MiB, one path to a page), however they were moved: the
/// allocator fills the smallest holes first. Here they take one buffer. A watch removed leaves
/// its bytes until the table is made again ([`compacted`]), at every re-homing and whenever
/// most of it is dead.
#[derive(Clone, Debug, Default)]
pub(super) struct Rels {
    bytes: Vec<u8>,
}

impl Rels {
    /// Adds a path; `None` once the table would pass 4 GiB (the watch is then not made: its
    /// unit falls back to access times, as beyond the watch limit).
    pub(super) fn add(&mut self, path: &Path) -> Option<Rel> {
        let bytes = path.as_os_str().as_bytes();
        let at = u32::try_from(self.bytes.len()).ok()?;
        let len = u32::try_from(bytes.len()).ok()?;
        at.checked_add(len)?;
        self.bytes.extend_from_slice(bytes);
        Some(Rel { at, len })
    }

    pub(super) fn get(&self, rel: Rel) -> &Path {
        let (at, len) = (rel.at as usize, rel.len as usize);
        Path::new(OsStr::from_bytes(
            self.bytes.get(at..at + len).unwrap_or(&[]),
        ))
    }

    /// Bytes held, live or dead.
    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }
}

/// Whose a watched dir is. `R` is how a unit's dirs are held: in [`Rels`] by the tracker, as
/// paths while the watches wanted are worked out.
#[derive(Clone, Debug)]
pub(super) enum Watched<R = Rel> {
    /// A target dir itself: a profile dir created or removed there changes it.
    Target(Arc<Path>),
    Profile(ProfileKey),
    /// A dir where a build creates new units' dirs (the dir, relative to the target dir): a
    /// creation there in a build's window is that build's use of the new unit.
    Units(ProfileKey, Parent, Arc<Path>),
    Unit {
        target: Arc<Path>,
        /// The fingerprint dir, relative to the target dir.
        unit: R,
        /// The profile, relative to the target dir.
        profile: Arc<Path>,
        /// A build-script run's dir (relative to the target dir), when that is the dir watched
        /// rather than the fingerprint dir.
        run: Option<R>,
    },
}

impl<R> Watched<R> {
    /// The target dir it is in.
    pub(super) fn target(&self) -> &Arc<Path> {
        match self {
            Watched::Target(t)
            | Watched::Profile((t, _))
            | Watched::Units((t, _), ..)
            | Watched::Unit { target: t, .. } => t,
        }
    }

    /// The same watch with its unit's dirs held as `f` gives them (`None` from `f`: none).
    pub(super) fn map<S>(&self, f: impl FnMut(&R) -> Option<S>) -> Option<Watched<S>> {
        self.map_with(Arc::clone, f)
    }

    /// [`Watched::map`], with the shared paths (target dir, profile, dir of units) as `share`
    /// gives them.
    fn map_with<S>(
        &self,
        mut share: impl FnMut(&Arc<Path>) -> Arc<Path>,
        mut f: impl FnMut(&R) -> Option<S>,
    ) -> Option<Watched<S>> {
        Some(match self {
            Watched::Target(t) => Watched::Target(share(t)),
            Watched::Profile((t, p)) => Watched::Profile((share(t), share(p))),
            Watched::Units((t, p), parent, dir) => {
                Watched::Units((share(t), share(p)), parent.clone(), share(dir))
            }
            Watched::Unit {
                target,
                unit,
                profile,
                run,
            } => Watched::Unit {
                target: share(target),
                unit: f(unit)?,
                profile: share(profile),
                run: match run {
                    Some(r) => Some(f(r)?),
                    None => None,
                },
            },
        })
    }

    fn path_with<'a>(&'a self, get: impl Fn(&'a R) -> &'a Path) -> PathBuf {
        let rel: &Path = match self {
            Watched::Target(_) => return self.target().to_path_buf(),
            Watched::Profile((_, p)) => p,
            Watched::Units(_, _, dir) => dir,
            Watched::Unit { unit, run, .. } => get(run.as_ref().unwrap_or(unit)),
        };
        self.target().join(rel)
    }
}

impl<R: AsRef<Path>> Watched<R> {
    /// The dir watched.
    pub(super) fn path(&self) -> PathBuf {
        self.path_with(AsRef::as_ref)
    }
}

impl Watched {
    /// The dir watched, as the kernel is given it.
    pub(super) fn path_in(&self, rels: &Rels) -> PathBuf {
        self.path_with(|r| rels.get(*r))
    }
}

/// What an event in a watched dir means to the build windows, if anything.
pub(super) fn meaning(
    watched: &Watched,
    rels: &Rels,
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
        Watched::Unit {
            target,
            unit,
            profile,
            run,
        } => {
            let run_dir = run.is_some();
            let unit = || (target.clone(), Arc::from(rels.get(*unit)));
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
                Event::Write(unit())
            } else if flags.contains(ReadFlags::OPEN) && signal {
                Event::Signal(unit())
            } else if flags.contains(ReadFlags::CLOSE_NOWRITE)
                && names::is_read_by_readers_only(name, run_dir)
            {
                Event::Reader(unit())
            } else {
                return None;
            };
            Some(((target.clone(), profile.clone()), event))
        }
    }
}

/// What is watched for in a dir of `owner`'s (never through a symlink, directories only).
pub(super) fn watch_flags<R>(owner: &Watched<R>) -> WatchFlags {
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

/// The bytes of the units' dirs the watches name: what [`compacted`] keeps of their table.
pub(super) fn live_bytes(by_wd: &ByWd) -> usize {
    by_wd
        .values()
        .map(|w| match w {
            Watched::Unit { unit, run, .. } => {
                unit.len as usize + run.map_or(0, |r| r.len as usize)
            }
            _ => 0,
        })
        .sum()
}

/// The watches with their units' dirs in a fresh table holding only theirs, and every shared
/// path moved into a fresh allocation, shared as before: see `Tracker::rehome`. The old watches
/// are dropped only once every new one is made (freed as the move went, each new path would
/// take the chunk its old one just left).
pub(super) fn compacted(old: &ByWd, rels: &Rels) -> (ByWd, Rels) {
    let mut fresh_rels = Rels {
        bytes: Vec::with_capacity(live_bytes(old)),
    };
    // Each shared path once, as before: keyed by the allocation it is moved from.
    let mut fresh: HashMap<usize, Arc<Path>> = HashMap::new();
    let mut again = |a: &Arc<Path>| -> Arc<Path> {
        fresh
            .entry(Arc::as_ptr(a).cast::<u8>() as usize)
            .or_insert_with(|| Arc::from(&**a))
            .clone()
    };
    let mut by_wd = HashMap::with_capacity(old.len());
    for (&wd, w) in old {
        // Copied from one table into a smaller one, it fits; a package's name is copied too.
        if let Some(w) = w.map_with(&mut again, |r| fresh_rels.add(rels.get(*r))) {
            by_wd.insert(wd, w);
        }
    }
    (by_wd, fresh_rels)
}
