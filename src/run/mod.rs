//! The flow, once for every driver: measure → decide → act → outcome.
//! - [`clean`]: a run (`clean`, `run-now`, the daemon's scheduled and pressure runs); drivers
//!   differ only in what they pass in (the daemon: what it recorded of last use, a stop flag,
//!   its fingerprint cache).
//! - [`survey::survey`]: measure and decide without acting (`scan`, `status`, the daemon's
//!   index, the metrics textfile).
//! - [`guard::pass`]: the guard's pass, a phased plan of its own
//!   ([`cachekeeper_core::decide::guard`]) carried out phase by phase.
//!
//! Measuring and disk work (on a blocking thread; a panic there is a bug, resumed in the
//! caller alike for every driver) go through the helpers here.
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
use cachekeeper_sys::act::prune;
use cachekeeper_sys::act::sweep::{self, Observer};
use cachekeeper_sys::docker::Engine;
use cachekeeper_sys::measure::{self, inventory::FingerprintCache};
use cachekeeper_sys::progress::Progress;

pub mod guard;
pub mod survey;

/// Measures `sides` under `roots`; with the daemon's fingerprint `cache`, begun and ended
/// around it. A measurement that walks every target dir has the cache forget what it did not
/// meet; one that takes target dirs as they were (`reuse`) forgets nothing: forgetting the
/// files of those dirs would have the next walk read them again, and a read of a unit's files
/// just after a build ends counts as a reader's, taking the build's use away (see
/// `daemon::builds`).
async fn measure(
    config: &Config,
    roots: &[PathBuf],
    sides: Sides,
    progress: &Arc<Progress>,
    cache: Option<&Arc<FingerprintCache>>,
    reuse: Option<measure::Reuse>,
) -> (Snapshot, Option<Engine>) {
    let full = cache.filter(|_| reuse.is_none()).map(|c| c.begin());
    let measured = measure::measure(
        config,
        roots,
        sides,
        Arc::clone(progress),
        cache.cloned(),
        reuse,
    )
    .await;
    if let Some(c) = cache {
        c.end(full);
    }
    measured
}

/// Disk work, on a blocking thread. A panic there is a bug (its message already printed by
/// the runtime): it goes on in the caller, the same in every driver.
async fn on_disk<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

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
    let (snapshot, engine) = measure(config, roots, sides, &progress, cache.as_ref(), None).await;
    let now = SystemTime::now();
    let recorded = uses.as_ref().map(|u| {
        u.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    });
    let (plan, buildkit_plan) = decide(config, &snapshot, recorded.as_ref(), &watched, now);
    let cargo_stop = stop.clone();
    let (snapshot, plan, sweep) = on_disk(move || {
        let report = sweep::sweep(
            &snapshot.targets,
            &plan,
            mode,
            cargo_stop.as_deref(),
            observer.as_mut(),
            live.as_deref(),
        );
        (snapshot, plan, report)
    })
    .await;
    let buildkit_sweep = match (&snapshot.buildkit, &buildkit_plan) {
        (BuildkitSide::Ready(cache), Some(p)) => {
            progress.say("pruning the BuildKit cache");
            let r = prune::sweep(engine.as_ref(), cache, p, mode, stop.as_deref()).await;
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
