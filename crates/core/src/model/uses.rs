//! What the daemon knows of last use beyond file times: when it first saw each unit, when a
//! build last used it and which build that was, per target dir. An input of the decision,
//! never patched into a snapshot.
//!
//! A build is known by its id: the moment (milliseconds since the epoch) cargo took the
//! profile's build lock. Builds of one profile never overlap (cargo's lock serializes them), so
//! within a profile the id names one build, and a later build has a larger id.

use std::collections::BTreeMap;
#[cfg(test)]
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A time from seconds since the epoch.
#[must_use]
pub fn time_of(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

fn time(s: u64) -> SystemTime {
    time_of(s)
}

/// When the daemon first saw a unit, and when a build last used it (seconds since the epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub first: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<u64>,
    /// Builds that used it since the daemon first saw it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uses: u32,
    /// The last build that used it (see the module doc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<u64>,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The last-use index: target dir → unit fingerprint dir (relative) → [`Seen`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LastUse {
    #[serde(default, with = "crate::pathcodec::keys")]
    targets: BTreeMap<PathBuf, BTreeMap<String, Seen>>,
    /// Changed since it was last saved.
    #[serde(skip)]
    pub dirty: bool,
}

impl LastUse {
    /// Notes that the unit exists (first sight counts as a use at that moment).
    pub fn observe(&mut self, target: &Path, unit: &Path, now: SystemTime) {
        let units = self.targets.entry(target.to_path_buf()).or_default();
        let key = crate::pathcodec::encode(unit);
        if let std::collections::btree_map::Entry::Vacant(e) = units.entry(key) {
            e.insert(Seen {
                first: secs(now),
                ..Seen::default()
            });
            self.dirty = true;
        }
    }

    /// Notes that exactly `units` (fingerprint dirs) exist in `target` now: one first seen is
    /// added (first sight counts as a use at that moment), one no longer there is dropped. Once
    /// per refresh for every unit: an existing unit's key is moved, not encoded again.
    pub fn observe_units<'u>(
        &mut self,
        target: &Path,
        units: impl IntoIterator<Item = &'u Path>,
        now: SystemTime,
    ) {
        if !self.targets.contains_key(target) {
            self.targets.insert(target.to_path_buf(), BTreeMap::new());
        }
        let Some(map) = self.targets.get_mut(target) else {
            return;
        };
        let mut old = std::mem::take(map);
        for unit in units {
            let taken = match unit.to_str() {
                Some(s) if !s.contains('\\') => old.remove_entry(s),
                _ => old.remove_entry(&crate::pathcodec::encode(unit)),
            };
            let (key, seen) = taken.unwrap_or_else(|| {
                self.dirty = true;
                let seen = Seen {
                    first: secs(now),
                    ..Seen::default()
                };
                (crate::pathcodec::encode(unit), seen)
            });
            map.insert(key, seen);
        }
        self.dirty |= !old.is_empty();
    }

    /// Records that build `build` used the unit at `at`. Returns whether it is a new use, rather
    /// than the same build again (a use counts once per unit and build).
    pub fn record_use(&mut self, target: &Path, unit: &Path, at: SystemTime, build: u64) -> bool {
        let units = self.targets.entry(target.to_path_buf()).or_default();
        let seen = units.entry(crate::pathcodec::encode(unit)).or_insert(Seen {
            first: secs(at),
            ..Seen::default()
        });
        let new = seen.build.is_none_or(|b| b < build);
        if new {
            seen.uses = seen.uses.saturating_add(1);
            seen.build = Some(build);
            self.dirty = true;
        }
        if seen.used.is_none_or(|u| u < secs(at)) {
            seen.used = Some(secs(at));
            self.dirty = true;
        }
        new
    }

    /// The last build the daemon saw use the unit.
    #[must_use]
    pub fn build(&self, target: &Path, unit: &Path) -> Option<u64> {
        self.seen(target, unit)?.build
    }

    /// A unit's record. Its key is the unit's path as JSON writes it; a path that needs no
    /// escaping is its own key, looked up without encoding it (decide asks this several times
    /// per unit at every refresh).
    fn seen(&self, target: &Path, unit: &Path) -> Option<&Seen> {
        let units = self.targets.get(target)?;
        match unit.to_str() {
            Some(s) if !s.contains('\\') => units.get(s),
            _ => units.get(&crate::pathcodec::encode(unit)),
        }
    }

    /// Only the records of `targets` (what a CLI beside the daemon asks for).
    #[must_use]
    pub fn only(&self, targets: &[PathBuf]) -> LastUse {
        LastUse {
            targets: self
                .targets
                .iter()
                .filter(|(t, _)| targets.contains(t))
                .map(|(t, u)| (t.clone(), u.clone()))
                .collect(),
            dirty: false,
        }
    }

    #[must_use]
    pub(crate) fn first_seen(&self, target: &Path, unit: &Path) -> Option<SystemTime> {
        Some(time(self.seen(target, unit)?.first))
    }

    #[must_use]
    pub fn recorded(&self, target: &Path, unit: &Path) -> Option<SystemTime> {
        self.seen(target, unit)?.used.map(time)
    }

    /// How many builds used the unit since the daemon first saw it, and since when it counts.
    #[must_use]
    pub(crate) fn use_count(&self, target: &Path, unit: &Path) -> Option<(u32, SystemTime)> {
        let seen = self.seen(target, unit)?;
        Some((seen.uses, time(seen.first)))
    }

    /// Drops target dirs that are gone.
    pub fn retain_targets(&mut self, present: &[PathBuf]) {
        let before = self.targets.len();
        self.targets.retain(|k, _| present.contains(k));
        self.dirty |= self.targets.len() != before;
    }

    #[must_use]
    pub fn units(&self) -> usize {
        self.targets.values().map(BTreeMap::len).sum()
    }
}

/// Target dirs the daemon watches whole, and since when (this process): their uses since then
/// are exact, and file times after it are no evidence (a reader moves access times too).
pub type Watched = std::collections::HashMap<PathBuf, SystemTime>;

/// How the daemon's watching goes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrackStats {
    pub watched_units: usize,
    /// Units that could not be watched (they fall back to access times).
    pub unwatched_units: usize,
    pub watch_limit_reached: bool,
    /// Uses of units recorded since the daemon started (one per unit and build).
    pub uses: u64,
    /// Times the kernel's event queue overflowed (uses during builds then were lost).
    #[serde(default)]
    pub overflows: u64,
    pub error: Option<String>,
}

/// Uses recorded while a run goes on: the sweep asks, under cargo's lock, whether a build used
/// a unit since the plan was made.
pub trait RecordedUses: Send + Sync {
    fn recorded_use(&self, target: &Path, unit: &Path) -> Option<SystemTime>;
}

impl RecordedUses for std::sync::Mutex<LastUse> {
    fn recorded_use(&self, target: &Path, unit: &Path) -> Option<SystemTime> {
        self.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recorded(target, unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sight_is_kept_and_uses_only_move_forward() {
        let mut u = LastUse::default();
        let (t, unit) = (Path::new("/t"), Path::new("debug/.fingerprint/a-1"));
        u.observe_units(t, [unit], time(100));
        assert_eq!(u.first_seen(t, unit), Some(time(100)));
        assert_eq!(u.recorded(t, unit), None);
        u.observe_units(t, [unit], time(500)); // seeing it again changes nothing
        assert_eq!(u.first_seen(t, unit), Some(time(100)));
        assert!(u.record_use(t, unit, time(300), 300_000));
        assert_eq!(u.recorded(t, unit), Some(time(300)));
        u.record_use(t, unit, time(200), 200_000); // older events do not move it back
        assert_eq!(u.recorded(t, unit), Some(time(300)));
        assert_eq!(u.first_seen(t, unit), Some(time(100)));
        assert_eq!(u.build(t, unit), Some(300_000));
        // The same build again is the same use, however long it ran; the next build is another.
        assert!(!u.record_use(t, unit, time(302), 300_000));
        assert_eq!(u.use_count(t, unit), Some((1, time(100))));
        assert!(u.record_use(t, unit, time(301), 301_000));
        assert_eq!(u.use_count(t, unit), Some((2, time(100))));
        assert_eq!(u.recorded(t, unit), Some(time(302)));
    }

    #[test]
    fn the_units_observed_are_those_kept_whatever_their_names() {
        let mut u = LastUse::default();
        let t = Path::new("/t");
        let odd = std::ffi::OsStr::from_bytes(b"debug/.fingerprint/x\\y-\xff");
        let (a, b, c) = (
            Path::new("debug/.fingerprint/a-1"),
            Path::new("debug/.fingerprint/b-2"),
            Path::new(odd),
        );
        u.observe_units(t, [a, b, c], time(100));
        assert!(u.dirty);
        assert_eq!(u.units(), 3);
        u.record_use(t, c, time(200), 200_000);
        u.dirty = false;
        u.observe_units(t, [c, a, b], time(300));
        assert!(!u.dirty, "the same units: nothing changed");
        assert_eq!(
            u.recorded(t, c),
            Some(time(200)),
            "an escaped name keeps its record"
        );
        u.observe_units(t, [c], time(400));
        assert!(u.dirty);
        assert_eq!(u.units(), 1);
        assert_eq!(u.first_seen(t, c), Some(time(100)));
        assert_eq!(u.first_seen(t, a), None);
    }
}
