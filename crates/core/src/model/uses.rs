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
    targets: BTreeMap<PathBuf, Units>,
    /// Changed since it was last saved.
    #[serde(skip)]
    pub dirty: bool,
}

/// One target dir's units: a unit's key is its fingerprint dir as JSON writes it (see
/// [`Units::key_of`]). The daemon holds this for as long as it runs, for every unit: so the keys
/// lie side by side in one string and the records in one vector sorted by key, two allocations
/// for a target dir of 10,000 units rather than 20,000 scattered among what each walk frees.
#[derive(Clone, Debug, Default)]
struct Units {
    keys: String,
    /// Sorted by key, each key once.
    rows: Vec<Row>,
}

#[derive(Clone, Copy, Debug)]
struct Row {
    /// Where the key is in `keys`.
    at: usize,
    len: usize,
    seen: Seen,
}

impl Units {
    /// The key of a unit's fingerprint dir: the path itself when it needs no escaping (no
    /// encoding then: decide asks several times per unit at every refresh).
    fn key_of(unit: &Path) -> std::borrow::Cow<'_, str> {
        match unit.to_str() {
            Some(s) if !s.contains('\\') => std::borrow::Cow::Borrowed(s),
            _ => std::borrow::Cow::Owned(crate::pathcodec::encode(unit)),
        }
    }

    fn key(&self, row: &Row) -> &str {
        key_in(&self.keys, row)
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.rows.binary_search_by(|r| self.key(r).cmp(key))
    }

    fn get(&self, key: &str) -> Option<&Seen> {
        self.find(key).ok().map(|i| &self.rows[i].seen)
    }

    /// The record of `key`, made by `new` if there is none.
    fn entry(&mut self, key: &str, new: impl FnOnce() -> Seen) -> &mut Seen {
        let i = match self.find(key) {
            Ok(i) => i,
            Err(i) => {
                let at = self.keys.len();
                self.keys.push_str(key);
                let row = Row {
                    at,
                    len: key.len(),
                    seen: new(),
                };
                self.rows.insert(i, row);
                i
            }
        };
        &mut self.rows[i].seen
    }

    /// From records in any order; of a key given twice, the first record is kept.
    fn from_records<'k>(records: impl IntoIterator<Item = (&'k str, Seen)>) -> Units {
        let mut units = Units::default();
        for (key, seen) in records {
            let at = units.keys.len();
            units.keys.push_str(key);
            units.rows.push(Row {
                at,
                len: key.len(),
                seen,
            });
        }
        let Units { keys, rows } = &mut units;
        rows.sort_by(|a, b| key_in(keys, a).cmp(key_in(keys, b)));
        rows.dedup_by(|b, a| key_in(keys, a) == key_in(keys, b));
        // Held until the next refresh: no room for twice as many (a vector grows by doubling).
        keys.shrink_to_fit();
        rows.shrink_to_fit();
        units
    }

    fn len(&self) -> usize {
        self.rows.len()
    }
}

/// A row's key in `keys` (the table's string, borrowed apart from its rows while they sort).
fn key_in<'k>(keys: &'k str, row: &Row) -> &'k str {
    keys.get(row.at..row.at + row.len).unwrap_or("")
}

impl Serialize for Units {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.rows.len()))?;
        for r in &self.rows {
            m.serialize_entry(self.key(r), &r.seen)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Units {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Units, D::Error> {
        let map = BTreeMap::<String, Seen>::deserialize(d)?;
        Ok(Units::from_records(
            map.iter().map(|(k, seen)| (k.as_str(), *seen)),
        ))
    }
}

fn first_sight(now: SystemTime) -> Seen {
    Seen {
        first: secs(now),
        ..Seen::default()
    }
}

impl LastUse {
    /// Notes that the unit exists (first sight counts as a use at that moment).
    pub fn observe(&mut self, target: &Path, unit: &Path, now: SystemTime) {
        let units = self.targets.entry(target.to_path_buf()).or_default();
        let mut new = false;
        units.entry(&Units::key_of(unit), || {
            new = true;
            first_sight(now)
        });
        self.dirty |= new;
    }

    /// Notes that exactly `units` (fingerprint dirs) exist in `target` now: one first seen is
    /// added (first sight counts as a use at that moment), one no longer there is dropped. Once
    /// per refresh for every unit: the table is made again, in fresh memory, side by side.
    pub fn observe_units<'u>(
        &mut self,
        target: &Path,
        units: impl IntoIterator<Item = &'u Path>,
        now: SystemTime,
    ) {
        let old = self.targets.remove(target).unwrap_or_default();
        let keys: Vec<std::borrow::Cow<'u, str>> = units.into_iter().map(Units::key_of).collect();
        let mut found = 0;
        let fresh = Units::from_records(keys.iter().map(|k| {
            let seen = old.get(k).copied();
            found += usize::from(seen.is_some());
            (&**k, seen.unwrap_or_else(|| first_sight(now)))
        }));
        // The same units exactly: each met once in the earlier table, and no other there.
        self.dirty |= found != keys.len() || fresh.len() != keys.len() || old.len() != keys.len();
        self.targets.insert(target.to_path_buf(), fresh);
    }

    /// Records that build `build` used the unit at `at`. Returns whether it is a new use, rather
    /// than the same build again (a use counts once per unit and build).
    pub fn record_use(&mut self, target: &Path, unit: &Path, at: SystemTime, build: u64) -> bool {
        let units = self.targets.entry(target.to_path_buf()).or_default();
        let seen = units.entry(&Units::key_of(unit), || first_sight(at));
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

    fn seen(&self, target: &Path, unit: &Path) -> Option<&Seen> {
        self.targets.get(target)?.get(&Units::key_of(unit))
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
        self.targets.values().map(Units::len).sum()
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
    fn units_recorded_in_any_order_are_found_and_written_sorted() {
        let mut u = LastUse::default();
        let t = Path::new("/t");
        // 200 keys in a scrambled order, some recorded twice.
        let names: Vec<String> = (0..200u32)
            .map(|i| format!("debug/.fingerprint/c-{:03}", (i * 67) % 200))
            .collect();
        for (i, n) in names.iter().enumerate() {
            let at = time(1_000 + i as u64);
            assert!(u.record_use(t, Path::new(n), at, 1));
            assert!(
                !u.record_use(t, Path::new(n), at, 1),
                "the same build again"
            );
        }
        assert_eq!(u.units(), 200);
        for (i, n) in names.iter().enumerate() {
            assert_eq!(u.recorded(t, Path::new(n)), Some(time(1_000 + i as u64)));
        }
        assert_eq!(u.recorded(t, Path::new("debug/.fingerprint/c-200")), None);
        let json = serde_json::to_string(&u).unwrap();
        let keys: Vec<&str> = json
            .match_indices("debug/.fingerprint/c-")
            .map(|(i, _)| &json[i..i + 24])
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(
            keys, sorted,
            "written as a map sorted by key, as before: {json}"
        );
    }

    #[test]
    fn the_table_reads_back_as_the_map_it_is_written_as() {
        let mut u = LastUse::default();
        let t = Path::new("/t");
        let odd = std::ffi::OsStr::from_bytes(b"debug/.fingerprint/x\\y-\xff");
        let (a, b, c) = (
            Path::new("debug/.fingerprint/b-2"),
            Path::new("debug/.fingerprint/a-1"),
            Path::new(odd),
        );
        u.observe_units(t, [a, b, c], time(100));
        u.record_use(t, c, time(200), 200_000);
        let json = serde_json::to_string(&u).unwrap();
        assert_eq!(
            json,
            r#"{"targets":{"/t":{"debug/.fingerprint/a-1":{"first":100},"debug/.fingerprint/b-2":{"first":100},"debug/.fingerprint/x\\\\y-\\xff":{"first":100,"used":200,"uses":1,"build":200000}}}}"#
        );
        let back: LastUse = serde_json::from_str(&json).unwrap();
        assert_eq!(back.units(), 3);
        assert_eq!(back.recorded(t, c), Some(time(200)));
        assert_eq!(back.build(t, c), Some(200_000));
        assert_eq!(back.first_seen(t, a), Some(time(100)));
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
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
