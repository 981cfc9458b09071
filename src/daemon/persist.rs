//! The daemon's hold on its state dir. What it cannot keep there (a state dir owned by
//! another user, an immutable history, a full disk) is a health problem, said in `status`,
//! `healthcheck` and the metrics, never a silent loss; the daemon runs on meanwhile (it can
//! still clean), keeps history in memory, and tries the state dir again at every save.

use std::path::{Path, PathBuf};

use super::state::{History, StateDir};
use cachekeeper_core::model::{LastUse, RunRecord};

pub(super) struct Persist {
    path: PathBuf,
    dir: Option<StateDir>,
    /// Why the last attempt to keep something failed; `None` once one succeeds.
    failed: Option<String>,
}

impl Persist {
    pub(super) fn open(path: &Path) -> Persist {
        let mut p = Persist {
            path: path.to_path_buf(),
            dir: None,
            failed: None,
        };
        p.reopen();
        p
    }

    fn reopen(&mut self) -> bool {
        if self.dir.is_some() {
            return true;
        }
        match StateDir::open(&self.path) {
            Ok(d) => {
                if self.failed.take().is_some() {
                    tracing::info!(dir = %self.path.display(), "the state dir can be used again");
                }
                self.dir = Some(d);
                true
            }
            Err(e) => {
                self.fail(format!(
                    "cannot use the state dir {}: {e}",
                    self.path.display()
                ));
                false
            }
        }
    }

    fn fail(&mut self, why: String) {
        if self.failed.as_deref() != Some(why.as_str()) {
            tracing::error!("{why}; history and last-use times are kept in memory only");
        }
        self.failed = Some(why);
    }

    #[must_use]
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Why history or last use cannot be kept now, if they cannot.
    #[must_use]
    pub(super) fn problem(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    pub(super) fn load_uses(&self) -> LastUse {
        self.dir
            .as_ref()
            .map(StateDir::load_uses)
            .unwrap_or_default()
    }

    pub(super) fn history(&self) -> History {
        self.dir
            .as_ref()
            .map_or_else(History::empty, |d| d.history(true))
    }

    /// Saves the last-use index if it changed; `false` when it could not be.
    pub(super) fn save_uses(&mut self, uses: &mut LastUse) -> bool {
        if !self.reopen() {
            return false;
        }
        if !uses.dirty {
            return true;
        }
        let saved = self.dir.as_ref().map(|d| d.save_uses(uses));
        match saved {
            Some(Err(e)) => {
                self.fail(format!(
                    "cannot save last-use times in {}: {e}",
                    self.path.display()
                ));
                false
            }
            _ => {
                self.failed = None;
                true
            }
        }
    }

    /// Appends a run to the history, or keeps it in memory and says why.
    pub(super) fn append(&mut self, history: &mut History, run: RunRecord) -> Result<(), String> {
        if !self.reopen() {
            history.remember(run);
            return Err(self.failed.clone().unwrap_or_default());
        }
        let Some(dir) = self.dir.as_ref() else {
            history.remember(run);
            return Err("no state dir".into());
        };
        match dir.append(history, run.clone()) {
            Ok(()) => {
                self.failed = None;
                Ok(())
            }
            Err(e) => {
                history.remember(run);
                let why = format!(
                    "cannot record the run in {}: {e}",
                    dir.file("history.jsonl").display()
                );
                self.fail(why.clone());
                Err(why)
            }
        }
    }

    /// Reads the history again if someone else appended to it.
    pub(super) fn refresh(&self, history: &mut History) {
        if let Some(d) = &self.dir {
            d.refresh(history);
        }
    }
}
