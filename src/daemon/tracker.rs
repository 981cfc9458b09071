//! Exact last use: inotify watches on every unit's fingerprint dir.
//!
//! On every build that involves a unit, cargo opens the unit's fingerprint files (even when
//! nothing recompiles), so an open, read or write event in a unit's fingerprint dir is a use,
//! recorded the moment it happens, regardless of `noatime` or `relatime`. One non-recursive
//! watch per unit dir is enough; `deps/` is never watched (cargo only stats it).
//!
//! The watch limit (`fs.inotify.max_user_watches`) can run out: units that could not be
//! watched fall back to access times, and `status` says how many.
//!
//! cachekeeper's own reads of fingerprint files would look like uses too; the daemon's scans
//! go through an [`crate::inventory::FingerprintCache`] so they only open files a build just
//! wrote (see there).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use serde::Serialize;

use super::state::LastUse;
use crate::inventory::TargetDir;

/// Watched dir → (target dir, the unit's fingerprint dir relative to it).
type WatchMap = HashMap<PathBuf, (PathBuf, PathBuf)>;

#[derive(Clone, Debug, Default, Serialize)]
pub struct TrackStats {
    pub watched_units: usize,
    /// Units that could not be watched (they fall back to access times).
    pub unwatched_units: usize,
    pub watch_limit_reached: bool,
    /// Uses recorded since the daemon started.
    pub events: u64,
    pub error: Option<String>,
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
                    let Some(dir) = path.parent() else { continue };
                    if let Some((target, unit)) = map.get(dir) {
                        lock(&u).record_use(target, unit, now);
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
                    present.insert(u.fingerprint_dir.display().to_string());
                    desired.insert(
                        t.path.join(&u.fingerprint_dir),
                        (t.path.clone(), u.fingerprint_dir.clone()),
                    );
                }
                uses.retain(&t.path, &present);
            }
            let paths: Vec<PathBuf> = targets.iter().map(|t| t.path.clone()).collect();
            uses.retain_targets(&paths);
        }
        let Some(watcher) = self.watcher.as_mut() else {
            self.partial = targets.iter().map(|t| t.path.clone()).collect();
            self.stats.unwatched_units = desired.len();
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
        let mut unwatched = 0;
        let mut limit = false;
        for (dir, owner) in desired {
            if map.contains_key(&dir) {
                continue;
            }
            if limit {
                unwatched += 1;
                self.partial.insert(owner.0);
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
                    unwatched += 1;
                    self.partial.insert(owner.0);
                }
            }
        }
        self.stats.watched_units = map.len();
        self.stats.unwatched_units = unwatched;
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
            events: self.events.load(Ordering::Relaxed),
            ..self.stats.clone()
        }
    }
}
