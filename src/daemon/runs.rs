//! The daemon's runs: start one (or queue it behind the one in progress), finish it (record
//! it, answer who waits, measure again), and what history keeps of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use tokio::sync::oneshot;

use super::Daemon;
use crate::protocol::Response;
use crate::report::{CleanView, journal};
use crate::run::{self, Job};
use cachekeeper_core::model::{Mode, Outcome, Sides};
use cachekeeper_sys::act::sweep::NoObserver;
use cachekeeper_sys::progress::Progress;

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
        let watched = self.watched.clone();
        super::lock(&self.tracker).flush();
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
            watched,
            live: super::lock(&self.tracker).live(),
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

    pub(super) fn finish(&mut self, outcome: Outcome) {
        let Some(run) = self.running.take() else {
            return;
        };
        let stopped = run.stop.load(Ordering::SeqCst);
        let view = CleanView::from_outcome(&outcome);
        let record = crate::report::record_of(
            &outcome,
            &view,
            &crate::report::RunFacts {
                trigger: run.trigger.clone(),
                origin: "daemon".into(),
                dry_run: run.dry_run,
                started: run.started,
                duration: run.clock.elapsed(),
                stopped,
            },
        );
        self.exporter.observe(&record, &view);
        journal::log_actions(&outcome);
        tracing::info!(
            trigger = run.trigger,
            reclaimed = record.reclaimed_bytes,
            duration_ms = record.duration_ms,
            "run done: reclaimed {}",
            cachekeeper_core::units::human_bytes(record.reclaimed_bytes)
        );
        for why in &record.blocked {
            tracing::info!(trigger = run.trigger, "why: {why}");
        }
        for e in &record.errors {
            self.remember_error(e.clone());
        }
        if self
            .state
            .append(&mut self.history, record.clone())
            .is_err()
        {
            self.exporter.error(crate::metrics::ErrorKind::State);
        }
        let response = Response::Run(Box::new(view));
        for w in run.waiters {
            let _ = w.send(response.clone());
        }
        // What it removed is walked again (a removed incremental dir is in no watched dir).
        if !run.dry_run {
            self.acted.extend(
                outcome
                    .plan
                    .actions
                    .iter()
                    .map(|a| outcome.snapshot.targets[a.item.target].path.clone()),
            );
        }
        drop(outcome);
        // The run's counters now; the gauges once the rescan after it is done.
        self.publish_metrics(true);
        if !stopped {
            self.refresh(None, None);
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
