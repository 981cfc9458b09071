//! One clean: survey, plan, sweep, for both sides. The `clean` command, the daemon's runs and
//! the guard's phases are the same job; the daemon adds what it knows of last use and a stop
//! flag.
//!
//! It is async because the engine is: every caller awaits it on the one runtime its driver
//! owns (the CLI's `block_on`, the daemon's task). Disk work runs on blocking threads.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use crate::buildkit;
use crate::config::Config;
use crate::inventory::FingerprintCache;
use crate::policy::Plan;
use crate::progress::Progress;
use crate::survey::{self, Sides, Survey};
use crate::sweep::{self, Mode, Observer, SweepReport};

/// Everything a clean measured, decided and did.
pub struct Outcome {
    pub survey: Survey,
    pub plan: Plan,
    pub sweep: SweepReport,
    pub buildkit_plan: Option<buildkit::plan::Plan>,
    pub buildkit_sweep: Option<buildkit::SweepReport>,
    pub mode: Mode,
    pub sides: Sides,
}

impl Outcome {
    /// Whether the BuildKit side was asked for but could not be done.
    #[must_use]
    pub fn buildkit_not_done(&self) -> bool {
        match &self.survey.buildkit {
            buildkit::Side::Unavailable { quiet, .. } => !quiet || !self.sides.cargo,
            buildkit::Side::Ready(_) => self.buildkit_sweep.as_ref().is_some_and(|s| s.errors > 0),
            buildkit::Side::Off => false,
        }
    }

    #[must_use]
    pub fn reclaimed_bytes(&self) -> u64 {
        self.sweep.reclaimed_bytes.saturating_add(
            self.buildkit_sweep
                .as_ref()
                .map_or(0, |s| s.reclaimed_bytes),
        )
    }
}

/// What a clean works with besides the config and the roots.
pub struct Job {
    pub sides: Sides,
    pub mode: Mode,
    /// Checked between actions: asked to stop, the job finishes the action it is in and ends.
    pub stop: Option<Arc<AtomicBool>>,
    pub progress: Arc<Progress>,
    /// The daemon's: spares re-reading fingerprint files it has seen.
    pub cache: Option<Arc<FingerprintCache>>,
    /// Refines the survey before planning (the daemon applies the last uses it recorded).
    pub adjust: Box<dyn FnOnce(&mut Survey) + Send>,
    /// Sees each action (progress, recorded uses).
    pub observer: Box<dyn Observer + Send>,
}

impl Job {
    /// A job with no stop flag, no cache, no adjustment and no observer.
    #[must_use]
    pub fn new(sides: Sides, mode: Mode, progress: Arc<Progress>) -> Job {
        Job {
            sides,
            mode,
            stop: None,
            progress,
            cache: None,
            adjust: Box::new(|_| {}),
            observer: Box::new(sweep::NoObserver),
        }
    }
}

/// Runs one clean.
pub async fn clean(config: &Config, roots: &[PathBuf], job: Job) -> Outcome {
    let Job {
        sides,
        mode,
        stop,
        progress,
        cache,
        adjust,
        mut observer,
    } = job;
    if let Some(c) = &cache {
        c.begin();
    }
    let (mut survey, engine) =
        survey::measure(config, roots, sides, Arc::clone(&progress), cache.clone()).await;
    if let Some(c) = &cache {
        c.end();
    }
    adjust(&mut survey);
    let now = SystemTime::now();
    let plan = survey.plan(&survey::settings(config), now);
    let cargo_stop = stop.clone();
    let swept = tokio::task::spawn_blocking(move || {
        let report = sweep::sweep(
            &survey.targets,
            &plan,
            mode,
            cargo_stop.as_deref(),
            observer.as_mut(),
        );
        (survey, plan, report)
    })
    .await;
    let (survey, plan, sweep) = match swept {
        Ok(done) => done,
        // The sweep panicked: a bug, whose message the runtime printed. Nothing more is done.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let buildkit_plan = survey.buildkit_plan(config, now);
    let buildkit_sweep = match (&survey.buildkit, &buildkit_plan) {
        (buildkit::Side::Ready(cache), Some(p)) => {
            progress.say("pruning the BuildKit cache");
            let r = buildkit::sweep(engine.as_ref(), cache, p, mode, stop.as_deref()).await;
            progress.done();
            Some(r)
        }
        _ => None,
    };
    Outcome {
        survey,
        plan,
        sweep,
        buildkit_plan,
        buildkit_sweep,
        mode,
        sides,
    }
}
