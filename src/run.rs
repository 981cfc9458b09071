//! One run, the way every driver runs it: measure → decide → act → outcome. The `clean`
//! command and the daemon's runs are this; they differ only in what they pass in (the daemon:
//! what it recorded of last use, a stop flag, its fingerprint cache). The guard takes the same
//! three steps with a phased plan of its own ([`cachekeeper_core::decide::guard`]).
//!
//! It is async because the engine is: every caller awaits it on the one runtime its driver
//! owns (the CLI's `block_on`, the daemon's task). Disk work runs on blocking threads. The
//! clock is read once, here, and handed to `decide`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use cachekeeper_core::config::Config;
use cachekeeper_core::decide;
use cachekeeper_core::model::{
    BuildkitPlan, BuildkitSide, CargoPlan, LastUse, Mode, Outcome, RecordedUses, Sides, Snapshot,
    Watched,
};
use cachekeeper_sys::act::sweep::{self, Observer};
use cachekeeper_sys::measure::{self, inventory::FingerprintCache};
use cachekeeper_sys::progress::Progress;

/// What a run works with besides the config and the roots.
pub struct Job {
    pub sides: Sides,
    pub mode: Mode,
    /// Checked between actions: asked to stop, the run finishes the action it is in and ends.
    pub stop: Option<Arc<AtomicBool>>,
    pub progress: Arc<Progress>,
    /// The daemon's: spares re-reading fingerprint files it has seen.
    pub cache: Option<Arc<FingerprintCache>>,
    /// What the daemon records of last use: an input of the decision.
    pub uses: Option<Arc<Mutex<LastUse>>>,
    /// Target dirs the daemon watches whole, and since when: their last uses are exact.
    pub watched: Watched,
    /// Asked under cargo's lock before each unit goes: whether a build used it since the plan
    /// (the daemon's records and the builds in progress).
    pub live: Option<Arc<dyn RecordedUses>>,
    /// Sees each action (progress).
    pub observer: Box<dyn Observer + Send>,
}

impl Job {
    /// A run with no stop flag, no cache, no recorded uses and no observer.
    #[must_use]
    pub fn new(sides: Sides, mode: Mode, progress: Arc<Progress>) -> Job {
        Job {
            sides,
            mode,
            stop: None,
            progress,
            cache: None,
            uses: None,
            watched: Watched::new(),
            live: None,
            observer: Box::new(sweep::NoObserver),
        }
    }
}

/// Both plans for a snapshot.
#[must_use]
pub fn decide(
    config: &Config,
    snapshot: &Snapshot,
    uses: Option<&LastUse>,
    watched: &Watched,
    now: SystemTime,
) -> (CargoPlan, Option<BuildkitPlan>) {
    let settings = decide::cargo::Settings::of(config);
    let input = decide::cargo::Input::of(snapshot, &settings, uses, watched, now);
    let cargo = decide::cargo::plan(&input);
    let buildkit = match &snapshot.buildkit {
        BuildkitSide::Ready(cache) => Some(decide::buildkit::plan(
            &cache.records,
            &decide::buildkit::Settings::of(config),
            cache.filesystem.as_ref().map(|f| f.total_bytes),
            now,
        )),
        _ => None,
    };
    (cargo, buildkit)
}

/// Runs once.
pub async fn clean(config: &Config, roots: &[PathBuf], job: Job) -> Outcome {
    let Job {
        sides,
        mode,
        stop,
        progress,
        cache,
        uses,
        watched,
        live,
        mut observer,
    } = job;
    if let Some(c) = &cache {
        c.begin();
    }
    let (snapshot, engine) =
        measure::measure(config, roots, sides, Arc::clone(&progress), cache.clone()).await;
    if let Some(c) = &cache {
        c.end();
    }
    let now = SystemTime::now();
    let recorded = uses.as_ref().map(|u| {
        u.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    });
    let (plan, buildkit_plan) = decide(config, &snapshot, recorded.as_ref(), &watched, now);
    let cargo_stop = stop.clone();
    let swept = tokio::task::spawn_blocking(move || {
        let live = live.as_deref();
        let report = sweep::sweep(
            &snapshot.targets,
            &plan,
            mode,
            cargo_stop.as_deref(),
            observer.as_mut(),
            live,
        );
        (snapshot, plan, report)
    })
    .await;
    let (snapshot, plan, sweep) = match swept {
        Ok(done) => done,
        // The sweep panicked: a bug, whose message the runtime printed. Nothing more is done.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let buildkit_sweep = match (&snapshot.buildkit, &buildkit_plan) {
        (BuildkitSide::Ready(cache), Some(p)) => {
            progress.say("pruning the BuildKit cache");
            let r = cachekeeper_sys::act::prune::sweep(
                engine.as_ref(),
                cache,
                p,
                mode,
                stop.as_deref(),
            )
            .await;
            progress.done();
            Some(r)
        }
        _ => None,
    };
    Outcome {
        snapshot,
        plan,
        sweep,
        buildkit_plan,
        buildkit_sweep,
        mode,
        sides,
        planned_at: now,
    }
}
