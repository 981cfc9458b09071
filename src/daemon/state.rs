//! What cachekeeper keeps across runs, in its state dir (the daemon's, and the CLI's when no
//! daemon answers it):
//!
//! - `last-use.json`: per target dir and unit, when the daemon first saw the unit, when a build
//!   last used it, and which build. Replaced whole, atomically, so a crash leaves the old or
//!   the new file, never a torn one.
//! - `history.jsonl`: one JSON line per run (the daemon's, and `clean` by hand, from a timer,
//!   or by the guard), appended and synced under `history.lock`, so a CLI and the daemon
//!   writing at once neither tear a line nor lose a record; whoever appends first reads what
//!   the other appended since. A line torn by a crash is skipped when reading.
//!
//! Every file is written inside the state dir's handle, never through a link, and is `0600`;
//! the dir must be this user's and writable by nobody else ([`PrivateDir`]).
//!
//! A state file that cannot be read is set aside (`*.corrupt`) and started afresh: a fresh
//! last-use index means the daemon knows no uses before now, which the decision treats as
//! the CLI would (file times), never as "unused".

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use cachekeeper_core::model::{LastUse, RunRecord, Totals};
use cachekeeper_sys::os::private::PrivateDir;

const USES: &str = "last-use.json";

const HISTORY: &str = "history.jsonl";

const HISTORY_LOCK: &str = "history.lock";

/// The largest state file read (a last-use index of 100,000 units is about 15 MiB).
const MAX_STATE: u64 = 256 << 20;

pub struct StateDir {
    dir: PrivateDir,
}

impl StateDir {
    pub fn open(dir: &Path) -> io::Result<StateDir> {
        let dir = PrivateDir::open(dir)?;
        // Earlier versions wrote them readable by anyone, with every project path in them.
        for name in [USES, HISTORY] {
            dir.restrict(name, 0o600)?;
        }
        Ok(StateDir { dir })
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn load_uses(&self) -> LastUse {
        let set_aside = |why: String| {
            tracing::warn!(file = %self.path().join(USES).display(), "unreadable last-use index ({why}); set aside, starting afresh");
            let _ = self.dir.rename(USES, &format!("{USES}.corrupt"));
            LastUse::default()
        };
        match self.dir.read(USES, MAX_STATE) {
            Ok(Some(bytes)) => {
                serde_json::from_slice(&bytes).unwrap_or_else(|e| set_aside(e.to_string()))
            }
            Ok(None) => LastUse::default(),
            Err(e) => set_aside(e.to_string()),
        }
    }

    /// Saves the index if it changed.
    pub fn save_uses(&self, uses: &mut LastUse) -> io::Result<()> {
        if !uses.dirty {
            return Ok(());
        }
        let bytes = serde_json::to_vec(uses).map_err(io::Error::other)?;
        self.dir.replace(USES, &bytes, 0o600)?;
        uses.dirty = false;
        Ok(())
    }

    /// The run history, read whole (at most [`History::KEEP`] records). `repair` (the daemon)
    /// mends a torn last line first.
    #[must_use]
    pub fn history(&self, repair: bool) -> History {
        let mut h = History {
            runs: std::collections::VecDeque::new(),
            dropped: Totals::default(),
            unreadable: 0,
            known_len: 0,
        };
        let _lock = self.dir.lock(HISTORY_LOCK);
        h.load(&self.dir, repair);
        h
    }

    /// Appends a run to the history. `history` is brought up to date with what others
    /// appended since it was read, so it holds every record after.
    pub fn append(&self, history: &mut History, run: RunRecord) -> io::Result<()> {
        let _lock = self.dir.lock(HISTORY_LOCK)?;
        if self.dir.len(HISTORY)?.unwrap_or(0) != history.known_len {
            history.load(&self.dir, false);
        }
        history.append(&self.dir, run)
    }

    /// Reads the history again if someone else appended to it since (a `clean` run by hand
    /// while the daemon's socket was out of reach).
    pub fn refresh(&self, history: &mut History) {
        if self.dir.len(HISTORY).ok().flatten().unwrap_or(0) != history.known_len {
            let _lock = self.dir.lock(HISTORY_LOCK);
            history.load(&self.dir, false);
        }
    }

    /// Where the state dir is (for messages).
    #[must_use]
    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
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
    runs: std::collections::VecDeque<RunRecord>,
    dropped: Totals,
    /// Lines that could not be read (torn, or corrupt).
    pub unreadable: u64,
    /// The file's size when last read or written by us.
    known_len: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    dropped: Totals,
}

impl History {
    /// How many records the file keeps; beyond it, the oldest are folded into the totals.
    pub const KEEP: usize = 1000;

    /// A history with nothing in it (no state dir to read one from).
    #[must_use]
    pub fn empty() -> History {
        History {
            runs: std::collections::VecDeque::new(),
            dropped: Totals::default(),
            unreadable: 0,
            known_len: 0,
        }
    }

    /// Keeps a run in memory only (the state dir cannot be written).
    pub fn remember(&mut self, run: RunRecord) {
        self.runs.push_back(run);
        while self.runs.len() > Self::KEEP {
            if let Some(old) = self.runs.pop_front() {
                self.dropped.add(&old);
            }
        }
    }

    fn load(&mut self, dir: &PrivateDir, repair: bool) {
        self.runs.clear();
        self.dropped = Totals::default();
        self.unreadable = 0;
        self.known_len = 0;
        let bytes = match dir.read(HISTORY, MAX_STATE) {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(file = %dir.path().join(HISTORY).display(), "cannot read the history: {e}");
                return;
            }
        };
        self.known_len = bytes.len() as u64;
        let complete = bytes.last().is_none_or(|b| *b == b'\n');
        let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        let n = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Ok(run) = serde_json::from_slice::<RunRecord>(line) {
                self.runs.push_back(run);
            } else if let Ok(header) = serde_json::from_slice::<Header>(line) {
                self.dropped = header.dropped;
            } else {
                self.unreadable += 1;
                if repair && i + 1 == n && !complete {
                    // A torn tail: end it, so the next record starts on a line of its own.
                    match dir.append(HISTORY, b"\n") {
                        Ok(()) => self.known_len += 1,
                        Err(e) => tracing::warn!(
                            file = %dir.path().join(HISTORY).display(),
                            "cannot mend the history's last line: {e}"
                        ),
                    }
                }
            }
        }
        if self.runs.len() > Self::KEEP {
            while self.runs.len() > Self::KEEP {
                if let Some(old) = self.runs.pop_front() {
                    self.dropped.add(&old);
                }
            }
            // A history from before it was bounded: trim the file once.
            if repair && let Err(e) = self.rewrite(dir) {
                tracing::warn!(file = %dir.path().join(HISTORY).display(), "cannot trim the history: {e}");
            }
        }
    }

    /// Appends a run (synced). Past [`History::KEEP`] records, the file is rewritten with the
    /// newest ones and the totals of the rest.
    fn append(&mut self, dir: &PrivateDir, run: RunRecord) -> io::Result<()> {
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
            return self.rewrite(dir);
        }
        if dir.last_byte(HISTORY)?.is_some_and(|b| b != b'\n') {
            // Something tore the last line since we read it: end it first.
            line.insert(0, b'\n');
            self.unreadable += 1;
        }
        dir.append(HISTORY, &line)?;
        self.known_len = dir.len(HISTORY)?.unwrap_or(0);
        Ok(())
    }

    fn rewrite(&mut self, dir: &PrivateDir) -> io::Result<()> {
        let mut bytes = serde_json::to_vec(&Header {
            dropped: self.dropped.clone(),
        })
        .map_err(io::Error::other)?;
        bytes.push(b'\n');
        for r in &self.runs {
            bytes.extend(serde_json::to_vec(r).map_err(io::Error::other)?);
            bytes.push(b'\n');
        }
        dir.replace(HISTORY, &bytes, 0o600)?;
        self.known_len = bytes.len() as u64;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

    #[test]
    fn state_survives_a_restart_and_a_torn_history_line() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(d.path()).unwrap();
        let mut u = LastUse::default();
        u.record_use(
            Path::new("/t"),
            Path::new("u"),
            cachekeeper_core::model::time_of(42),
            42_000,
        );
        s.save_uses(&mut u).unwrap();
        assert_eq!(
            s.load_uses().recorded(Path::new("/t"), Path::new("u")),
            Some(cachekeeper_core::model::time_of(42))
        );

        let run = RunRecord {
            trigger: "schedule".into(),
            reclaimed_bytes: 7,
            ..RunRecord::default()
        };
        let mut h = s.history(true);
        s.append(&mut h, run.clone()).unwrap();
        s.append(&mut h, run.clone()).unwrap();
        // A crash mid-append leaves half a line; the next append must not glue onto it.
        let torn = |d: &Path| {
            let mut f = OpenOptions::new()
                .append(true)
                .open(d.join(HISTORY))
                .unwrap();
            f.write_all(b"{\"trigger\":\"pre").unwrap();
        };
        torn(d.path());
        s.append(&mut h, run.clone()).unwrap();
        // A restart finds a torn tail again, and mends it before appending.
        torn(d.path());
        let mut h = s.history(true);
        s.append(&mut h, run.clone()).unwrap();
        // And a corrupt line in the middle hides nothing after it.
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.path().join(HISTORY))
            .unwrap();
        f.write_all(b"\xff\xfe not json\n").unwrap();
        s.append(&mut h, run).unwrap();
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
            targets: vec![cachekeeper_core::model::TargetRun::default(); 20],
            ..RunRecord::default()
        };
        for _ in 0..3 * History::KEEP {
            s.append(&mut h, run.clone()).unwrap();
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
