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

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{LastUse, RunRecord, Totals};

const USES: &str = "last-use.json";

const HISTORY: &str = "history.jsonl";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_restart_and_a_torn_history_line() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(d.path()).unwrap();
        let mut u = LastUse::default();
        u.record_use(Path::new("/t"), Path::new("u"), crate::model::time_of(42));
        s.save_uses(&mut u).unwrap();
        assert_eq!(
            s.load_uses().recorded(Path::new("/t"), Path::new("u")),
            Some(crate::model::time_of(42))
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
            targets: vec![crate::model::TargetRun::default(); 20],
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
