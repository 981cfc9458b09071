//! One clean: survey, plan, sweep, for both sides. The `clean` command and the daemon's runs
//! are the same job; the daemon adds what it knows of last use and a stop flag.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use crate::buildkit;
use crate::config::Config;
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
}

impl Outcome {
    /// Whether the BuildKit side was asked for but could not be done.
    #[must_use]
    pub fn buildkit_not_done(&self, sides: Sides) -> bool {
        match &self.survey.buildkit {
            buildkit::Side::Unavailable { quiet, .. } => !quiet || !sides.cargo,
            buildkit::Side::Ready(_) => self.buildkit_sweep.as_ref().is_some_and(|s| s.errors > 0),
            buildkit::Side::Off => false,
        }
    }

    #[must_use]
    pub fn reclaimed_bytes(&self) -> u64 {
        self.sweep.reclaimed_bytes
            + self
                .buildkit_sweep
                .as_ref()
                .map_or(0, |s| s.reclaimed_bytes)
    }
}

/// Runs one clean. `cache` (the daemon's) spares re-reading fingerprint files; `adjust` may
/// refine the survey before planning (the daemon applies the last uses it recorded);
/// `observer` sees each action (progress, recorded uses).
#[allow(clippy::too_many_arguments)]
pub fn clean(
    config: &Config,
    roots: &[PathBuf],
    sides: Sides,
    mode: Mode,
    stop: Option<&AtomicBool>,
    progress: &Progress,
    cache: Option<&crate::inventory::FingerprintCache>,
    adjust: &mut dyn FnMut(&mut Survey),
    observer: &mut dyn Observer,
) -> Outcome {
    let mut survey = Survey::take_with(config, roots, sides, progress, cache);
    adjust(&mut survey);
    let now = SystemTime::now();
    let plan = survey.plan(&survey::settings(config), now);
    let sweep = sweep::sweep(&survey.targets, &plan, mode, stop, observer);
    let buildkit_plan = survey.buildkit_plan(config, now);
    let buildkit_sweep = match (&survey.buildkit, &buildkit_plan) {
        (buildkit::Side::Ready(cache), Some(p)) => {
            progress.say("pruning the BuildKit cache");
            let r = cache.sweep(p, mode, stop);
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
    }
}
