//! The daemon's runs: start one (or queue it behind the one in progress), finish it (record
//! it, answer who waits, measure again), and what history keeps of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use tokio::sync::oneshot;

use super::Daemon;
use crate::act::sweep::NoObserver;
use crate::model::{BuildkitSide, Mode, Outcome, Part, RunRecord, Sides, Status, TargetRun};
use crate::progress::Progress;
use crate::protocol::Response;
use crate::report::{CleanView, journal};
use crate::run::{self, Job};
use crate::units::rfc3339;

/// A run in progress.
pub(super) struct Running {
    pub(super) trigger: String,
    dry_run: bool,
    pub(super) started: SystemTime,
    clock: Instant,
    pub(super) stop: Arc<AtomicBool>,
    waiters: Vec<oneshot::Sender<Response>>,
    /// Closed without an outcome if the job panicked.
    pub(super) done: oneshot::Receiver<Outcome>,
}

impl Daemon {
    /// Starts a run, or queues it behind the one in progress.
    pub(super) fn start(
        &mut self,
        trigger: &str,
        dry_run: bool,
        waiter: Option<oneshot::Sender<Response>>,
    ) {
        if self.running.is_some() {
            match waiter {
                // A manual request waits for a run of its own; schedule and pressure fold into
                // the one in progress.
                Some(w) => self.queued.push((trigger.into(), dry_run, Some(w))),
                None => {
                    tracing::info!("{trigger} trigger while a run is in progress: folded into it")
                }
            }
            return;
        }
        let config = self.config.clone();
        let uses = Arc::clone(&self.uses);
        let cache = Arc::clone(&self.cache);
        let stop = Arc::new(AtomicBool::new(false));
        let tracked = self.tracked.clone();
        let (tx, rx) = oneshot::channel();
        let mode = if dry_run { Mode::DryRun } else { Mode::Execute };
        tracing::info!(trigger, dry_run, "run starts");
        let job = Job {
            sides: Sides::BOTH,
            mode,
            stop: Some(Arc::clone(&stop)),
            progress: Arc::new(Progress::hidden()),
            cache: Some(cache),
            uses: Some(uses),
            tracked,
            observer: Box::new(NoObserver),
        };
        tokio::spawn(async move {
            let outcome = run::clean(&config, &config.cargo.roots, job).await;
            let _ = tx.send(outcome);
        });
        self.last_run = Some(SystemTime::now());
        self.running = Some(Running {
            trigger: trigger.into(),
            dry_run,
            started: SystemTime::now(),
            clock: Instant::now(),
            stop,
            waiters: waiter.into_iter().collect(),
            done: rx,
        });
        self.notifier.notify(&format!("STATUS={}", self.summary()));
    }

    pub(super) async fn finish(&mut self, outcome: Outcome) {
        let Some(run) = self.running.take() else {
            return;
        };
        let stopped = run.stop.load(Ordering::SeqCst);
        let view = CleanView::from_outcome(&outcome);
        let record = record_of(&outcome, &run, stopped, &view);
        self.exporter.observe(&record, &view);
        journal::log_actions(&outcome);
        tracing::info!(
            trigger = run.trigger,
            reclaimed = record.reclaimed_bytes,
            duration_ms = record.duration_ms,
            "run done: reclaimed {}",
            crate::units::human_bytes(record.reclaimed_bytes)
        );
        for why in &record.blocked {
            tracing::info!(trigger = run.trigger, "why: {why}");
        }
        for e in &record.errors {
            self.remember_error(e.clone());
        }
        if let Err(e) = self.history.append(record.clone()) {
            self.remember_error(format!("cannot record the run in history: {e}"));
        }
        let response = Response::Run(Box::new(view));
        for w in run.waiters {
            let _ = w.send(response.clone());
        }
        drop(outcome);
        if stopped {
            self.publish_metrics(true);
        } else {
            self.rescan().await;
            if !self.queued.is_empty() {
                let (trigger, dry_run, waiter) = self.queued.remove(0);
                self.start(&trigger, dry_run, waiter);
            }
        }
        self.notifier.notify(&format!("STATUS={}", self.summary()));
    }

    /// The run's task ended without an outcome (a bug: its panic message is in the log).
    pub(super) fn job_died(&mut self) {
        if let Some(run) = self.running.take() {
            self.remember_error(format!(
                "the {} run failed unexpectedly; see the log",
                run.trigger
            ));
            for w in run.waiters {
                let _ = w.send(Response::refused(
                    "the run failed unexpectedly; see the daemon's log",
                ));
            }
        }
        self.notifier.notify(&format!("STATUS={}", self.summary()));
    }
}

fn record_of(outcome: &Outcome, run: &Running, stopped: bool, view: &CleanView) -> RunRecord {
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
        trigger: run.trigger.clone(),
        dry_run: run.dry_run,
        started: rfc3339(run.started),
        started_unix: run
            .started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        duration_ms: u64::try_from(run.clock.elapsed().as_millis()).unwrap_or(u64::MAX),
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
        stopped,
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
