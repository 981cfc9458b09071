//! The daemon's history as data: one record per run, and totals.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Rule;

/// One run of the policy, as history keeps it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// What started it: the daemon's `schedule`, `pressure` or `manual` (`run-now`); `cli` (a
    /// `clean` by hand), `timer` (the nightly `clean` of `install.sh --timer`), `guard`.
    pub trigger: String,
    /// Who ran it: `daemon`, `cli`, `timer` or `guard` (records from before it was kept are
    /// the daemon's).
    #[serde(default = "daemon_origin")]
    pub origin: String,
    pub dry_run: bool,
    /// RFC 3339 UTC.
    pub started: String,
    pub started_unix: u64,
    pub duration_ms: u64,
    pub reclaimed_bytes: u64,
    pub cargo_reclaimed_bytes: u64,
    pub buildkit_reclaimed_bytes: u64,
    /// Freed per rule, both sides (in a dry run: what would be). Absent in records written
    /// before it was kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_rule: BTreeMap<Rule, u64>,
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

fn daemon_origin() -> String {
    "daemon".into()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetRun {
    #[serde(with = "crate::pathcodec")]
    pub path: PathBuf,
    pub reclaimed_bytes: u64,
    pub units_removed: u64,
    pub incremental_removed: u64,
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
    /// Counts one run.
    pub fn add(&mut self, r: &RunRecord) {
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
