//! What `history` and `healthcheck` show.

use serde::{Deserialize, Serialize};

use super::{CleanView, Exit, SCHEMA_VERSION};
use cachekeeper_core::model::{BuildkitSide, Outcome, Part, RunRecord, Status, TargetRun, Totals};

/// Past runs, oldest first, and the totals of every run ever recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryView {
    pub version: u32,
    pub runs: Vec<RunRecord>,
    pub totals: Totals,
    /// When the config file on disk no longer validates (the daemon answers on the one it
    /// loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_on_disk: Option<super::ConfigOnDisk>,
}

impl HistoryView {
    #[must_use]
    pub fn new(runs: Vec<RunRecord>, totals: Totals) -> HistoryView {
        HistoryView {
            version: SCHEMA_VERSION,
            runs,
            totals,
            config_on_disk: None,
        }
    }
}

/// Whether the daemon is up and well.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HealthView {
    pub version: u32,
    pub healthy: bool,
    /// The daemon's, when one answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<super::ErrorView>,
    /// What the daemon is busy with (`rescanning`, `running (schedule)`): it answers all the
    /// same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<String>,
}

impl HealthView {
    /// Unhealthy, and why; `pid` of the daemon, if one answered.
    #[must_use]
    pub fn unhealthy(pid: Option<u32>, why: &str) -> HealthView {
        HealthView {
            version: SCHEMA_VERSION,
            healthy: false,
            pid,
            error: Some(super::ErrorView::new(why, Exit::Failure)),
            activity: None,
        }
    }

    #[must_use]
    pub fn exit(&self) -> Exit {
        if self.healthy {
            Exit::Ok
        } else {
            Exit::Failure
        }
    }
}

/// What a run's record says besides its outcome: who started it, when, how long it took.
pub struct RunFacts {
    pub trigger: String,
    pub origin: String,
    pub dry_run: bool,
    pub started: std::time::SystemTime,
    pub duration: std::time::Duration,
    /// Stopped before the plan was done.
    pub stopped: bool,
}

/// The history record of a finished run: what it freed, per target dir and rule, what failed,
/// what blocked it.
#[must_use]
pub fn record_of(outcome: &Outcome, view: &CleanView, facts: &RunFacts) -> RunRecord {
    let mut targets: Vec<TargetRun> = outcome
        .snapshot
        .targets
        .iter()
        .map(|t| TargetRun {
            path: t.path.clone(),
            ..TargetRun::default()
        })
        .collect();
    let mut errors = Vec::new();
    let mut by_rule = std::collections::BTreeMap::new();
    for r in &outcome.sweep.results {
        let a = &outcome.plan.actions[r.action];
        *by_rule.entry(a.rule).or_insert(0u64) += r.reclaimed_bytes;
        let t = &mut targets[a.item.target];
        t.reclaimed_bytes += r.reclaimed_bytes;
        if matches!(r.status, Status::Removed | Status::WouldRemove) {
            match a.item.part {
                Part::Unit(_) | Part::Orphan(_) => t.units_removed += 1,
                Part::Incremental(_) => t.incremental_removed += 1,
            }
        }
        if r.status == Status::Partial {
            errors.extend(r.errors.iter().cloned());
        }
    }
    targets.retain(|t| t.reclaimed_bytes > 0 || t.units_removed > 0 || t.incremental_removed > 0);
    for (p, e) in &outcome.snapshot.failed {
        errors.push(format!("{}: {e}", p.display()));
    }
    if let BuildkitSide::Unavailable {
        error,
        quiet: false,
    } = &outcome.snapshot.buildkit
    {
        errors.push(format!("BuildKit: {error}"));
    }
    if let (Some(s), Some(plan)) = (&outcome.buildkit_sweep, &outcome.buildkit_plan) {
        errors.extend(s.results.iter().filter_map(|r| r.error.clone()));
        for r in &s.results {
            *by_rule.entry(plan.actions[r.action].rule).or_insert(0) += r.reclaimed_bytes;
        }
    }
    by_rule.retain(|_, b| *b > 0);
    let buildkit_records_removed = outcome.buildkit_sweep.as_ref().map_or(0, |s| {
        s.results
            .iter()
            .filter(|r| matches!(r.status, Status::Removed | Status::WouldRemove))
            .count() as u64
    });
    RunRecord {
        trigger: facts.trigger.clone(),
        origin: facts.origin.clone(),
        dry_run: facts.dry_run,
        started: cachekeeper_core::units::rfc3339(facts.started),
        started_unix: facts
            .started
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        duration_ms: u64::try_from(facts.duration.as_millis()).unwrap_or(u64::MAX),
        reclaimed_bytes: outcome.reclaimed_bytes(),
        cargo_reclaimed_bytes: outcome.sweep.reclaimed_bytes,
        buildkit_reclaimed_bytes: outcome
            .buildkit_sweep
            .as_ref()
            .map_or(0, |s| s.reclaimed_bytes),
        by_rule,
        targets,
        buildkit_state: view.buildkit.state.name().to_string(),
        buildkit_records_removed,
        errors,
        stopped: facts.stopped,
        blocked: view
            .blocked
            .iter()
            .cloned()
            .chain(
                view.buildkit
                    .blocked
                    .iter()
                    .map(|b| format!("BuildKit: {b}")),
            )
            .collect(),
    }
}

/// What a run got wrong, counted for metrics (`cachekeeper_errors_total`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunErrors {
    /// Parts that could not be removed whole.
    pub remove: u64,
    /// BuildKit records the engine would not prune.
    pub prune: u64,
    /// Target dirs that could not be scanned, dirs the search could not enter.
    pub scan: u64,
    /// The engine could not be used.
    pub engine: u64,
}

impl RunErrors {
    #[must_use]
    pub fn of(view: &CleanView) -> RunErrors {
        RunErrors {
            remove: view.errors,
            prune: view.buildkit.errors,
            scan: (view.failed.len() + view.search_errors.len()) as u64,
            engine: u64::from(view.buildkit.state == super::BuildkitState::Unavailable),
        }
    }
}

/// A run made outside the daemon (`clean` by hand or from a timer, the guard), sent to the
/// daemon so that its history and metrics count it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordView {
    pub run: RunRecord,
    pub errors: RunErrors,
}

/// What the daemon recorded of builds' uses, for a CLI that plans beside it: the same input
/// as the daemon's own plan.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UsesView {
    pub version: u32,
    pub uses: cachekeeper_core::model::LastUse,
    /// Target dirs watched whole, and since when (milliseconds since the epoch).
    pub watched: Vec<WatchedDir>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WatchedDir {
    #[serde(with = "cachekeeper_core::pathcodec")]
    pub path: std::path::PathBuf,
    pub since_unix_ms: u64,
}

impl UsesView {
    #[must_use]
    pub fn new(
        uses: cachekeeper_core::model::LastUse,
        watched: &cachekeeper_core::model::Watched,
    ) -> UsesView {
        UsesView {
            version: SCHEMA_VERSION,
            uses,
            watched: watched
                .iter()
                .map(|(path, since)| WatchedDir {
                    path: path.clone(),
                    since_unix_ms: since
                        .duration_since(std::time::SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                })
                .collect(),
        }
    }

    /// The watched target dirs as the decision takes them.
    #[must_use]
    pub fn watched(&self) -> cachekeeper_core::model::Watched {
        self.watched
            .iter()
            .map(|w| {
                (
                    w.path.clone(),
                    std::time::SystemTime::UNIX_EPOCH
                        + std::time::Duration::from_millis(w.since_unix_ms),
                )
            })
            .collect()
    }
}
