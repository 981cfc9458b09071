//! What the daemon counts over its runs: bytes reclaimed by cache, rule and trigger, runs by
//! trigger and outcome, their durations, errors by kind. Plain data, fed one finished run at a
//! time; counted since the daemon started, as Prometheus counters are.

use std::collections::BTreeMap;

use crate::report::{CleanView, RunErrors};
use cachekeeper_core::model::{Rule, RunRecord};

/// Upper bounds of the run-duration buckets, in seconds (a run takes from milliseconds on a
/// small machine to minutes on a big one).
pub const DURATION_BUCKETS: [f64; 10] =
    [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RunOutcome {
    /// Done, nothing failed.
    Success,
    /// Done, but something could not be read, removed or pruned.
    Failure,
    /// Stopped before the plan was done (the daemon was asked to stop).
    Stopped,
    /// A dry run: nothing removed.
    DryRun,
}

impl RunOutcome {
    pub const ALL: [RunOutcome; 4] = [
        RunOutcome::Success,
        RunOutcome::Failure,
        RunOutcome::Stopped,
        RunOutcome::DryRun,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RunOutcome::Success => "success",
            RunOutcome::Failure => "failure",
            RunOutcome::Stopped => "stopped",
            RunOutcome::DryRun => "dry-run",
        }
    }
}

/// What went wrong, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// A file in a target dir could not be removed.
    Remove,
    /// A BuildKit record could not be pruned.
    Prune,
    /// A target dir could not be scanned, or a directory the search had to enter.
    Scan,
    /// The Docker engine did not answer, or refused.
    Engine,
    /// The config file did not validate on reload.
    Reload,
    /// The metrics textfile could not be written.
    Textfile,
    /// History or last-use times could not be kept in the state dir.
    State,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Remove,
        ErrorKind::Prune,
        ErrorKind::Scan,
        ErrorKind::Engine,
        ErrorKind::Reload,
        ErrorKind::Textfile,
        ErrorKind::State,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Remove => "remove",
            ErrorKind::Prune => "prune",
            ErrorKind::Scan => "scan",
            ErrorKind::Engine => "engine",
            ErrorKind::Reload => "reload",
            ErrorKind::Textfile => "textfile",
            ErrorKind::State => "state",
        }
    }
}

/// What starts a daemon's run; each has its counters from the first scrape.
pub const TRIGGERS: [&str; 3] = ["schedule", "pressure", "manual"];

/// Which cache a rule works on.
#[must_use]
pub fn cache_of(rule: Rule) -> &'static str {
    match rule {
        Rule::KeepDuration | Rule::BuildkitBudget | Rule::HardLimit => "buildkit",
        _ => "cargo",
    }
}

/// A histogram's data: per-bucket (not cumulative) counts, the sum and the count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// One count per bound of [`DURATION_BUCKETS`], then one for +Inf.
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, value: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; DURATION_BUCKETS.len() + 1];
        }
        let i = DURATION_BUCKETS
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[i] += 1;
        self.sum += value;
        self.count += 1;
    }
}

/// Everything counted since the daemon started.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// (cache, rule, trigger) → bytes. Real runs only: a dry run frees nothing.
    pub reclaimed: BTreeMap<(&'static str, Rule, String), u64>,
    /// (trigger, outcome) → runs.
    pub runs: BTreeMap<(String, RunOutcome), u64>,
    pub duration: Histogram,
    pub errors: BTreeMap<ErrorKind, u64>,
    /// When the last run started (seconds since the epoch); seeded from history.
    pub last_run: Option<u64>,
    /// When the last real run that failed nothing started.
    pub last_success: Option<u64>,
}

impl Counters {
    /// Counters that know, from history, when the last run and the last success were, with
    /// every series a run can count there at 0: a counter that appears only when it first
    /// counts hides that first increase from `increase()` and `rate()`.
    #[must_use]
    pub fn seeded(history: &[RunRecord]) -> Counters {
        let mut reclaimed = BTreeMap::new();
        let mut runs = BTreeMap::new();
        for trigger in TRIGGERS {
            for rule in Rule::ALL {
                reclaimed.insert((cache_of(rule), rule, trigger.to_string()), 0);
            }
            for outcome in RunOutcome::ALL {
                runs.insert((trigger.to_string(), outcome), 0);
            }
        }
        Counters {
            reclaimed,
            runs,
            errors: ErrorKind::ALL.iter().map(|k| (*k, 0)).collect(),
            last_run: history.iter().map(|r| r.started_unix).max(),
            last_success: history
                .iter()
                .filter(|r| outcome(r) == RunOutcome::Success)
                .map(|r| r.started_unix)
                .max(),
            ..Counters::default()
        }
    }

    /// Counts a finished run, from its record and its report.
    pub fn observe(&mut self, record: &RunRecord, view: &CleanView) {
        self.observe_counted(record, RunErrors::of(view));
    }

    /// Counts a finished run, from its record and what it got wrong.
    pub fn observe_counted(&mut self, record: &RunRecord, errors: RunErrors) {
        let outcome = outcome(record);
        *self
            .runs
            .entry((record.trigger.clone(), outcome))
            .or_default() += 1;
        #[allow(clippy::cast_precision_loss)] // milliseconds of a run: far below 2^52
        self.duration.observe(record.duration_ms as f64 / 1000.0);
        self.last_run = self.last_run.max(Some(record.started_unix));
        if outcome == RunOutcome::Success {
            self.last_success = self.last_success.max(Some(record.started_unix));
        }
        if !record.dry_run {
            for (rule, bytes) in &record.by_rule {
                let key = (cache_of(*rule), *rule, record.trigger.clone());
                let slot = self.reclaimed.entry(key).or_default();
                *slot = slot.saturating_add(*bytes);
            }
        }
        self.observe_errors(errors);
    }

    /// Counts what a run got wrong.
    pub fn observe_errors(&mut self, errors: RunErrors) {
        for (kind, n) in [
            (ErrorKind::Remove, errors.remove),
            (ErrorKind::Prune, errors.prune),
            (ErrorKind::Scan, errors.scan),
            (ErrorKind::Engine, errors.engine),
        ] {
            self.error(kind, n);
        }
    }

    /// Counts `n` errors of `kind`.
    pub fn error(&mut self, kind: ErrorKind, n: u64) {
        if n > 0 {
            *self.errors.entry(kind).or_default() += n;
        }
    }
}

/// How a recorded run ended.
#[must_use]
pub fn outcome(r: &RunRecord) -> RunOutcome {
    if r.dry_run {
        RunOutcome::DryRun
    } else if r.stopped {
        RunOutcome::Stopped
    } else if r.errors.is_empty() {
        RunOutcome::Success
    } else {
        RunOutcome::Failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_each_value_in_its_bucket() {
        let mut h = Histogram::default();
        for v in [0.05, 0.1, 2.0, 7200.0] {
            h.observe(v);
        }
        assert_eq!(h.count, 4);
        assert_eq!(h.buckets[0], 2, "0.05 and 0.1 are <= 0.1");
        assert_eq!(h.buckets[3], 1, "2 s is <= 5 s");
        assert_eq!(h.buckets[DURATION_BUCKETS.len()], 1, "2 h only fits +Inf");
        assert!((h.sum - 7202.15).abs() < 1e-9);
    }

    #[test]
    fn seeding_finds_the_last_run_and_the_last_success() {
        let run = |at: u64, dry_run: bool, errors: &[&str]| RunRecord {
            started_unix: at,
            dry_run,
            errors: errors.iter().map(|e| (*e).to_string()).collect(),
            ..RunRecord::default()
        };
        let c = Counters::seeded(&[
            run(10, false, &[]),
            run(20, false, &["x: permission denied"]),
            run(30, true, &[]),
        ]);
        assert_eq!(c.last_run, Some(30));
        assert_eq!(
            c.last_success,
            Some(10),
            "a dry run and a failed run are no success"
        );
    }
}
