//! Exact last use: inotify watches on every unit's fingerprint dir (and a build script run's
//! build dir).
//!
//! On every build that involves a unit, cargo opens files of it even when nothing recompiles:
//! the dep-info in its fingerprint dir, or a build-script run's `output`. An open of one of
//! those, or any write in the unit's dirs, is a use, recorded the moment it happens,
//! regardless of `noatime` or `relatime`. One non-recursive watch per dir is enough; `deps/`
//! is never watched (cargo only stats it).
//!
//! inotify cannot tell who opened a file, so the signal files are ones cachekeeper never opens
//! (see [`crate::model::names::is_fingerprint_use_signal`]): the hash and JSON files it does read
//! are ignored. So no read by any cachekeeper process (a `scan`, a `clean --dry-run`, the
//! guard, the daemon's own rescans) is ever a use, and neither is a removal.
//!
//! A use counts once per unit and build: the events of one build (several opens of the same
//! files) within [`super::state::SAME_USE`] of each other are one use.
//!
//! The watch limit (`fs.inotify.max_user_watches`) can run out: units that could not be
//! watched fall back to access times, and `status` says how many.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use crate::model::TargetDir;
use crate::model::{LastUse, TrackStats};

/// Whose a watched dir is.
#[derive(Clone)]
struct Watched {
    target: PathBuf,
    /// The unit, by its fingerprint dir relative to the target dir.
    unit: PathBuf,
    /// A build-script run's build dir, rather than a fingerprint dir.
    run_dir: bool,
}

/// Watched dir → whose it is.
type WatchMap = HashMap<PathBuf, Watched>;

/// Whether an event in a unit's dir is a build's use: an open of a file cargo reads on every
/// build and cachekeeper never opens, or a write of any file (cachekeeper never writes there).
/// Removals, attribute changes and the opens of files cachekeeper reads too are not.
fn is_use(kind: &notify::EventKind, name: &std::ffi::OsStr, run_dir: bool) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
    match kind {
        EventKind::Access(
            AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(AccessMode::Read),
        ) => {
            let name = name.to_str().unwrap_or("");
            if run_dir {
                crate::model::names::is_run_use_signal(name)
            } else {
                crate::model::names::is_fingerprint_use_signal(name)
            }
        }
        EventKind::Create(_)
        | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(RenameMode::To))
        | EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

pub struct Tracker {
    watcher: Option<RecommendedWatcher>,
    map: Arc<Mutex<WatchMap>>,
    uses: Arc<Mutex<LastUse>>,
    events: Arc<AtomicU64>,
    /// Target dirs with at least one unit not watched.
    partial: HashSet<PathBuf>,
    stats: TrackStats,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Tracker {
    /// Starts watching nothing yet; `enabled = false` gives a tracker that never watches.
    #[must_use]
    pub fn new(uses: Arc<Mutex<LastUse>>, enabled: bool) -> Tracker {
        let map: Arc<Mutex<WatchMap>> = Arc::default();
        let events = Arc::new(AtomicU64::new(0));
        let mut stats = TrackStats::default();
        let watcher = if enabled {
            let (m, u, e) = (Arc::clone(&map), Arc::clone(&uses), Arc::clone(&events));
            match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                let Ok(event) = res else { return };
                let now = SystemTime::now();
                let map = lock(&m);
                for path in &event.paths {
                    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                        continue;
                    };
                    if let Some(w) = map.get(dir)
                        && is_use(&event.kind, name, w.run_dir)
                        && lock(&u).record_use(&w.target, &w.unit, now)
                    {
                        e.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }) {
                Ok(w) => Some(w),
                Err(e) => {
                    stats.error =
                        Some(format!("cannot watch for builds ({e}); using access times"));
                    None
                }
            }
        } else {
            None
        };
        Tracker {
            watcher,
            map,
            uses,
            events,
            partial: HashSet::new(),
            stats,
        }
    }

    /// Watches every unit of `targets` and stops watching units that are gone. Every unit is
    /// noted as seen (first sight counts as a use at `now`).
    pub fn sync(&mut self, targets: &[TargetDir], now: SystemTime) {
        let mut desired: WatchMap = HashMap::new();
        {
            let mut uses = lock(&self.uses);
            for t in targets {
                let mut present = HashSet::new();
                for u in &t.units {
                    uses.observe(&t.path, &u.fingerprint_dir, now);
                    present.insert(crate::pathcodec::encode(&u.fingerprint_dir));
                    let watched = |run_dir| Watched {
                        target: t.path.clone(),
                        unit: u.fingerprint_dir.clone(),
                        run_dir,
                    };
                    desired.insert(t.path.join(&u.fingerprint_dir), watched(false));
                    if let Some(run) = &u.run_dir {
                        desired.insert(t.path.join(run), watched(true));
                    }
                }
                uses.retain(&t.path, &present);
            }
            let paths: Vec<PathBuf> = targets.iter().map(|t| t.path.clone()).collect();
            uses.retain_targets(&paths);
        }
        let Some(watcher) = self.watcher.as_mut() else {
            self.partial = targets.iter().map(|t| t.path.clone()).collect();
            self.stats.unwatched_units = targets.iter().map(|t| t.units.len()).sum();
            return;
        };
        let mut map = lock(&self.map);
        let gone: Vec<PathBuf> = map
            .keys()
            .filter(|k| !desired.contains_key(*k))
            .cloned()
            .collect();
        for dir in gone {
            let _ = watcher.unwatch(&dir);
            map.remove(&dir);
        }
        self.partial.clear();
        // Units, not dirs: a build script's run has two dirs, and is watched when both are.
        let mut unwatched: HashSet<(PathBuf, PathBuf)> = HashSet::new();
        let mut limit = false;
        for (dir, owner) in desired {
            if map.contains_key(&dir) {
                continue;
            }
            if limit {
                unwatched.insert((owner.target.clone(), owner.unit.clone()));
                self.partial.insert(owner.target);
                continue;
            }
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    map.insert(dir, owner);
                }
                Err(e) => {
                    if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
                        limit = true;
                        tracing::warn!(
                            "inotify watch limit reached (fs.inotify.max_user_watches): units beyond it fall back to access times"
                        );
                    }
                    unwatched.insert((owner.target.clone(), owner.unit.clone()));
                    self.partial.insert(owner.target);
                }
            }
        }
        let watched: HashSet<(&PathBuf, &PathBuf)> = map
            .values()
            .map(|w| (&w.target, &w.unit))
            .filter(|(t, u)| !unwatched.contains(&((*t).clone(), (*u).clone())))
            .collect();
        self.stats.watched_units = watched.len();
        self.stats.unwatched_units = unwatched.len();
        self.stats.watch_limit_reached |= limit;
    }

    /// Whether every unit of `target` is watched, so its last uses are exact.
    #[must_use]
    pub fn fully_tracked(&self, target: &Path) -> bool {
        self.watcher.is_some() && !self.partial.contains(target)
    }

    #[must_use]
    pub fn stats(&self) -> TrackStats {
        TrackStats {
            uses: self.events.load(Ordering::Relaxed),
            ..self.stats.clone()
        }
    }
}
