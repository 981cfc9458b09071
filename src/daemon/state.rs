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
use std::io::{self, Write};
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
    #[serde(default, with = "crate::pathcodec::keys")]
    targets: BTreeMap<PathBuf, BTreeMap<String, Seen>>,
    #[serde(skip)]
    dirty: bool,
}

impl LastUse {
    /// Notes that the unit exists (first sight counts as a use at that moment).
    pub fn observe(&mut self, target: &Path, unit: &Path, now: SystemTime) {
        let units = self.targets.entry(target.to_path_buf()).or_default();
        let key = crate::pathcodec::encode(unit);
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
        let seen = units.entry(crate::pathcodec::encode(unit)).or_insert(Seen {
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
        let seen = self
            .targets
            .get(target)?
            .get(&crate::pathcodec::encode(unit))?;
        Some(time(seen.first))
    }

    #[must_use]
    pub fn recorded(&self, target: &Path, unit: &Path) -> Option<SystemTime> {
        let seen = self
            .targets
            .get(target)?
            .get(&crate::pathcodec::encode(unit))?;
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
    #[serde(with = "crate::pathcodec")]
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

    /// The run history, read whole (at most [`History::KEEP`] records). `repair` (the daemon,
    /// which appends) mends a torn last line first.
    #[must_use]
    pub fn history(&self, repair: bool) -> History {
        History::load(&self.dir.join(HISTORY), repair)
    }
}

/// The run history: `history.jsonl`, one record a line, newest last, at most [`History::KEEP`]
/// records; the totals of older runs, dropped to keep it small, in a first line of its own
/// (`{"dropped": {...}}`), so that trimming is one atomic rewrite.
///
/// A torn last line (a crash, a full disk) is never glued to the next record: an append first
/// ends an unterminated line. A line that cannot be read is skipped and counted
/// ([`History::unreadable`]), never stopping the records after it.
pub struct History {
    path: PathBuf,
    runs: std::collections::VecDeque<RunRecord>,
    dropped: Totals,
    /// Lines that could not be read (torn, or corrupt).
    pub unreadable: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    dropped: Totals,
}

impl History {
    /// How many records the file keeps; beyond it, the oldest are folded into the totals.
    pub const KEEP: usize = 1000;

    fn load(path: &Path, repair: bool) -> History {
        let mut h = History {
            path: path.to_path_buf(),
            runs: std::collections::VecDeque::new(),
            dropped: Totals::default(),
            unreadable: 0,
        };
        let Ok(bytes) = std::fs::read(path) else {
            return h;
        };
        let complete = bytes.last().is_none_or(|b| *b == b'\n');
        let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        let n = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Ok(run) = serde_json::from_slice::<RunRecord>(line) {
                h.runs.push_back(run);
            } else if let Ok(header) = serde_json::from_slice::<Header>(line) {
                h.dropped = header.dropped;
            } else {
                h.unreadable += 1;
                if repair && i + 1 == n && !complete {
                    // A torn tail: end it, so the next record starts on a line of its own.
                    let ended = OpenOptions::new()
                        .append(true)
                        .open(path)
                        .and_then(|mut f| f.write_all(b"\n"));
                    if let Err(e) = ended {
                        tracing::warn!(file = %path.display(), "cannot mend the history's last line: {e}");
                    }
                }
            }
        }
        if h.runs.len() > Self::KEEP {
            while h.runs.len() > Self::KEEP {
                if let Some(old) = h.runs.pop_front() {
                    h.dropped.add(&old);
                }
            }
            // A history from before it was bounded: trim the file once.
            if repair && let Err(e) = h.rewrite() {
                tracing::warn!(file = %path.display(), "cannot trim the history: {e}");
            }
        }
        h
    }

    /// Appends a run (fsynced). Past [`History::KEEP`] records, the file is rewritten with the
    /// newest ones and the totals of the rest.
    pub fn append(&mut self, run: RunRecord) -> io::Result<()> {
        let mut line = serde_json::to_vec(&run).map_err(io::Error::other)?;
        line.push(b'\n');
        self.runs.push_back(run);
        if self.runs.len() > Self::KEEP {
            // Trim to 90 %, so trimming is rare.
            while self.runs.len() > Self::KEEP * 9 / 10 {
                if let Some(old) = self.runs.pop_front() {
                    self.dropped.add(&old);
                }
            }
            return self.rewrite();
        }
        let mut f = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)?;
        let len = f.metadata()?.len();
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8; 1];
            f.seek(SeekFrom::Start(len - 1))?;
            f.read_exact(&mut last)?;
            if last[0] != b'\n' {
                // Something tore the last line since we read it: end it first.
                line.insert(0, b'\n');
                self.unreadable += 1;
            }
        }
        f.write_all(&line)?;
        f.sync_data()
    }

    fn rewrite(&self) -> io::Result<()> {
        let mut bytes = serde_json::to_vec(&Header {
            dropped: self.dropped.clone(),
        })
        .map_err(io::Error::other)?;
        bytes.push(b'\n');
        for r in &self.runs {
            bytes.extend(serde_json::to_vec(r).map_err(io::Error::other)?);
            bytes.push(b'\n');
        }
        write_atomically(&self.path, &bytes)
    }

    /// The last `limit` runs, oldest first.
    #[must_use]
    pub fn last(&self, limit: usize) -> Vec<RunRecord> {
        let skip = self.runs.len().saturating_sub(limit);
        self.runs.iter().skip(skip).cloned().collect()
    }

    /// Totals over every run ever recorded, those trimmed from the file included.
    #[must_use]
    pub fn totals(&self) -> Totals {
        let mut t = self.dropped.clone();
        for r in &self.runs {
            t.add(r);
        }
        t.unreadable_records = self.unreadable;
        t
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
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Real runs (what the totals add up).
    pub runs: u64,
    /// Dry runs: listed, never counted in the totals (they remove nothing).
    pub dry_runs: u64,
    pub reclaimed_bytes: u64,
    pub cargo_reclaimed_bytes: u64,
    pub buildkit_reclaimed_bytes: u64,
    /// History lines that could not be read (skipped, never hiding the records after them).
    #[serde(default)]
    pub unreadable_records: u64,
}

impl Totals {
    fn add(&mut self, r: &RunRecord) {
        if r.dry_run {
            self.dry_runs += 1;
            return;
        }
        self.runs += 1;
        self.reclaimed_bytes = self.reclaimed_bytes.saturating_add(r.reclaimed_bytes);
        self.cargo_reclaimed_bytes = self
            .cargo_reclaimed_bytes
            .saturating_add(r.cargo_reclaimed_bytes);
        self.buildkit_reclaimed_bytes = self
            .buildkit_reclaimed_bytes
            .saturating_add(r.buildkit_reclaimed_bytes);
    }
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
        let mut h = s.history(true);
        h.append(run.clone()).unwrap();
        h.append(run.clone()).unwrap();
        // A crash mid-append leaves half a line; the next append must not glue onto it.
        let torn = |d: &Path| {
            let mut f = OpenOptions::new()
                .append(true)
                .open(d.join(HISTORY))
                .unwrap();
            f.write_all(b"{\"trigger\":\"pre").unwrap();
        };
        torn(d.path());
        h.append(run.clone()).unwrap();
        // A restart finds a torn tail again, and mends it before appending.
        torn(d.path());
        let mut h = s.history(true);
        h.append(run.clone()).unwrap();
        // And a corrupt line in the middle hides nothing after it.
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.path().join(HISTORY))
            .unwrap();
        f.write_all(b"\xff\xfe not json\n").unwrap();
        h.append(run).unwrap();
        let h = s.history(false);
        assert_eq!(h.last(10).len(), 5);
        assert_eq!(h.unreadable, 3);
        let t = h.totals();
        assert_eq!(
            (t.runs, t.reclaimed_bytes, t.unreadable_records),
            (5, 35, 3)
        );
        assert_eq!(h.last(1).len(), 1);
    }

    #[test]
    fn the_history_is_bounded_and_keeps_its_totals() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(d.path()).unwrap();
        let mut h = s.history(true);
        let run = RunRecord {
            reclaimed_bytes: 1,
            targets: vec![TargetRun::default(); 20],
            ..RunRecord::default()
        };
        for _ in 0..3 * History::KEEP {
            h.append(run.clone()).unwrap();
        }
        let size = std::fs::metadata(d.path().join(HISTORY)).unwrap().len();
        let h = s.history(false);
        assert!(h.last(usize::MAX).len() <= History::KEEP);
        assert!(size < 4 << 20, "{size}");
        let t = h.totals();
        assert_eq!(
            (t.runs, t.reclaimed_bytes),
            (3 * History::KEEP as u64, 3000)
        );
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
