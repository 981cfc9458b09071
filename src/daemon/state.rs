//! What the daemon keeps across restarts, in its state dir:
//!
//! - `last-use.json`: per target dir and unit, when the daemon first saw the unit and when a
//!   build last read its fingerprint. Rewritten whole, atomically (temp file, fsync, rename,
//!   fsync of the dir), so a crash leaves the old or the new file, never a torn one.
//! - `history.jsonl`: one JSON line per run, appended and fsynced. A line torn by a crash is
//!   skipped when reading.
//!
//! A state file that cannot be read is set aside (`*.corrupt`) and started afresh: with
//! "first seen" semantics a fresh start counts every unit as used now, which only delays
//! cleaning, never causes it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

const USES: &str = "last-use.json";

/// Events of one unit closer together than this are one use (one build opens a unit's files
/// several times).
pub const SAME_USE: Duration = Duration::from_secs(5);
const HISTORY: &str = "history.jsonl";

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A time from seconds since the epoch.
#[must_use]
pub fn time_of(s: u64) -> SystemTime {
    time(s)
}

fn time(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

/// When the daemon first saw a unit, and when a build last used it (seconds since the epoch).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub first: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<u64>,
}

/// The last-use index: target dir → unit fingerprint dir (relative) → [`Seen`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LastUse {
    #[serde(default)]
    targets: BTreeMap<PathBuf, BTreeMap<String, Seen>>,
    #[serde(skip)]
    dirty: bool,
}

impl LastUse {
    /// Notes that the unit exists (first sight counts as a use at that moment).
    pub fn observe(&mut self, target: &Path, unit: &Path, now: SystemTime) {
        let units = self.targets.entry(target.to_path_buf()).or_default();
        let key = unit.display().to_string();
        if let std::collections::btree_map::Entry::Vacant(e) = units.entry(key) {
            e.insert(Seen {
                first: secs(now),
                used: None,
            });
            self.dirty = true;
        }
    }

    /// Records a use (a build read the unit's fingerprint). Returns whether it is a new use,
    /// rather than another event of the same build (within [`SAME_USE`] of the last one).
    pub fn record_use(&mut self, target: &Path, unit: &Path, at: SystemTime) -> bool {
        let units = self.targets.entry(target.to_path_buf()).or_default();
        let seen = units.entry(unit.display().to_string()).or_insert(Seen {
            first: secs(at),
            used: None,
        });
        let new = seen
            .used
            .is_none_or(|u| u.saturating_add(SAME_USE.as_secs()) < secs(at));
        if seen.used.is_none_or(|u| u < secs(at)) {
            seen.used = Some(secs(at));
            self.dirty = true;
        }
        new
    }

    #[must_use]
    pub fn first_seen(&self, target: &Path, unit: &Path) -> Option<SystemTime> {
        let seen = self.targets.get(target)?.get(&unit.display().to_string())?;
        Some(time(seen.first))
    }

    #[must_use]
    pub fn recorded(&self, target: &Path, unit: &Path) -> Option<SystemTime> {
        let seen = self.targets.get(target)?.get(&unit.display().to_string())?;
        seen.used.map(time)
    }

    /// Drops what is no longer there: units of `target` not in `present`.
    pub fn retain(&mut self, target: &Path, present: &std::collections::HashSet<String>) {
        if let Some(units) = self.targets.get_mut(target) {
            let before = units.len();
            units.retain(|k, _| present.contains(k));
            self.dirty |= units.len() != before;
        }
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

/// One run of the policy, as history keeps it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// `schedule`, `pressure`, `manual`.
    pub trigger: String,
    pub dry_run: bool,
    /// RFC 3339 UTC.
    pub started: String,
    pub started_unix: u64,
    pub duration_ms: u64,
    pub reclaimed_bytes: u64,
    pub cargo_reclaimed_bytes: u64,
    pub buildkit_reclaimed_bytes: u64,
    pub targets: Vec<TargetRun>,
    /// `ok`, `absent`, `unavailable` or `off`.
    pub buildkit_state: String,
    pub buildkit_records_removed: u64,
    pub errors: Vec<String>,
    /// Stopped before the plan was done (the daemon was asked to stop).
    pub stopped: bool,
    /// When the run freed nothing though the rules wanted to, or less than a budget needs:
    /// what blocked it, one line per side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetRun {
    pub path: PathBuf,
    pub reclaimed_bytes: u64,
    pub units_removed: u64,
    pub incremental_removed: u64,
}

pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn open(dir: &Path) -> io::Result<StateDir> {
        std::fs::create_dir_all(dir)?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
        })
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn load_uses(&self) -> LastUse {
        let p = self.dir.join(USES);
        match std::fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %p.display(), "unreadable last-use index ({e}); set aside, starting afresh");
                let _ = std::fs::rename(&p, p.with_extension("json.corrupt"));
                LastUse::default()
            }),
            Err(_) => LastUse::default(),
        }
    }

    /// Saves the index if it changed.
    pub fn save_uses(&self, uses: &mut LastUse) -> io::Result<()> {
        if !uses.dirty {
            return Ok(());
        }
        let bytes = serde_json::to_vec(uses).map_err(io::Error::other)?;
        write_atomically(&self.dir.join(USES), &bytes)?;
        uses.dirty = false;
        Ok(())
    }

    pub fn append_run(&self, run: &RunRecord) -> io::Result<()> {
        let mut line = serde_json::to_vec(run).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(HISTORY))?;
        f.write_all(&line)?;
        f.sync_data()
    }

    /// The last `limit` runs, oldest first.
    #[must_use]
    pub fn runs(&self, limit: usize) -> Vec<RunRecord> {
        let Ok(f) = File::open(self.dir.join(HISTORY)) else {
            return Vec::new();
        };
        let mut all: Vec<RunRecord> = BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect();
        let skip = all.len().saturating_sub(limit);
        all.drain(..skip);
        all
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        std::process::id()
    ));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// Totals over runs, for `history` and `status`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Real runs (what the totals add up).
    pub runs: u64,
    /// Dry runs: listed, never counted in the totals (they remove nothing).
    pub dry_runs: u64,
    pub reclaimed_bytes: u64,
    pub cargo_reclaimed_bytes: u64,
    pub buildkit_reclaimed_bytes: u64,
}

#[must_use]
pub fn totals(runs: &[RunRecord]) -> Totals {
    let real = runs.iter().filter(|r| !r.dry_run);
    let mut t = Totals {
        dry_runs: runs.iter().filter(|r| r.dry_run).count() as u64,
        ..Totals::default()
    };
    for r in real {
        t.runs += 1;
        t.reclaimed_bytes += r.reclaimed_bytes;
        t.cargo_reclaimed_bytes += r.cargo_reclaimed_bytes;
        t.buildkit_reclaimed_bytes += r.buildkit_reclaimed_bytes;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sight_is_kept_and_uses_only_move_forward() {
        let mut u = LastUse::default();
        let (t, unit) = (Path::new("/t"), Path::new("debug/.fingerprint/a-1"));
        u.observe(t, unit, time(100));
        assert_eq!(u.first_seen(t, unit), Some(time(100)));
        assert_eq!(u.recorded(t, unit), None);
        u.observe(t, unit, time(500)); // seeing it again changes nothing
        assert_eq!(u.first_seen(t, unit), Some(time(100)));
        u.record_use(t, unit, time(300));
        assert_eq!(u.recorded(t, unit), Some(time(300)));
        u.record_use(t, unit, time(200)); // older events do not move it back
        assert_eq!(u.recorded(t, unit), Some(time(300)));
        assert_eq!(u.first_seen(t, unit), Some(time(100)));
    }

    #[test]
    fn state_survives_a_restart_and_a_torn_history_line() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(d.path()).unwrap();
        let mut u = LastUse::default();
        u.record_use(Path::new("/t"), Path::new("u"), time(42));
        s.save_uses(&mut u).unwrap();
        assert_eq!(
            s.load_uses().recorded(Path::new("/t"), Path::new("u")),
            Some(time(42))
        );

        let run = RunRecord {
            trigger: "schedule".into(),
            reclaimed_bytes: 7,
            ..RunRecord::default()
        };
        s.append_run(&run).unwrap();
        s.append_run(&run).unwrap();
        // A crash mid-append leaves half a line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.path().join(HISTORY))
            .unwrap();
        f.write_all(b"{\"trigger\":\"pre").unwrap();
        let runs = s.runs(10);
        assert_eq!(runs.len(), 2);
        assert_eq!(totals(&runs).reclaimed_bytes, 14);
        assert_eq!(s.runs(1).len(), 1);
    }

    #[test]
    fn an_unreadable_index_is_set_aside() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(USES), b"{not json").unwrap();
        let s = StateDir::open(d.path()).unwrap();
        assert_eq!(s.load_uses().units(), 0);
        assert!(d.path().join("last-use.json.corrupt").exists());
    }
}
