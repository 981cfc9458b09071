//! The CI guard's decision: what to remove, in phases cheapest to rebuild first, to get every
//! filesystem involved above a floor of free space. From one snapshot, no re-measuring:
//!
//! 1. `cheap`: superseded incremental data, orphaned outputs, units of uninstalled toolchains,
//!    stale units (the cargo rules, without budgets);
//! 2. `buildkit`: unused BuildKit records, least recently used first, cache mounts kept;
//! 3. `units`: least recently used target-dir units, until the floor holds ([`Rule::MinFree`]);
//! 4. `cache-mounts`: BuildKit cache mounts (and what else the BuildKit cache can give).
//!
//! Each phase is planned on what the ones before it free; a phase is left out when the floor
//! already holds. The driver carries the phases out in order and stops as soon as the floor
//! holds (it measures free space between them).

use std::collections::HashSet;
use std::time::SystemTime;

use super::{buildkit, cargo};
use crate::config::{Config, Protect, Rules, SizeSpec};
use crate::model::{
    BuildkitCache, BuildkitPlan, BuildkitSide, CargoPlan, Filesystem, LastUse, Phase, Rule,
    Snapshot, Watched,
};

/// What one phase removes.
pub enum PhasePlan {
    Cargo(Phase, CargoPlan),
    Buildkit(Phase, BuildkitPlan),
}

impl PhasePlan {
    #[must_use]
    pub fn phase(&self) -> Phase {
        match self {
            PhasePlan::Cargo(p, _) | PhasePlan::Buildkit(p, _) => *p,
        }
    }
}

/// A pass's plan.
pub struct GuardPlan {
    pub phases: Vec<PhasePlan>,
    /// Why the floor cannot be reached, when the plan says it cannot (protected data, records
    /// in use).
    pub blocking: Vec<String>,
}

/// What the guard decides from.
pub struct Input<'a> {
    pub snapshot: &'a Snapshot,
    pub config: &'a Config,
    pub floor: SizeSpec,
    /// The filesystems the floor applies to, as measured now (the roots', Docker's root dir's).
    pub involved: &'a [Filesystem],
    pub uses: Option<&'a LastUse>,
    pub watched: &'a Watched,
    pub now: SystemTime,
}

/// Bytes still missing on the filesystem `dev` after `freed` more bytes.
fn missing(input: &Input<'_>, dev: u64, freed: u64) -> u64 {
    input.involved.iter().find(|f| f.dev == dev).map_or(0, |f| {
        input
            .floor
            .resolve(f.total_bytes)
            .saturating_sub(f.free_bytes.saturating_add(freed))
    })
}

/// What a cargo plan frees on each filesystem of the snapshot, by device.
fn cargo_freed(snapshot: &Snapshot, plan: &CargoPlan, dev: u64) -> u64 {
    plan.actions
        .iter()
        .filter(|a| {
            snapshot.targets[a.item.target]
                .fs
                .of(&snapshot.filesystems)
                .is_some_and(|f| f.dev == dev)
        })
        .fold(0, |t, a| t.saturating_add(a.bytes))
}

/// A cargo plan with only the actions `keep` says.
fn only(plan: &CargoPlan, keep: impl Fn(Rule) -> bool) -> CargoPlan {
    CargoPlan {
        actions: plan
            .actions
            .iter()
            .filter(|a| keep(a.rule))
            .cloned()
            .collect(),
        ..plan.clone()
    }
}

/// A BuildKit plan that frees `need` bytes of what is reclaimable now, least recently used
/// first, cache mounts as `protect` says.
fn buildkit_freeing(
    cache: &BuildkitCache,
    config: &Config,
    need: u64,
    protect: Protect,
    now: SystemTime,
) -> BuildkitPlan {
    let reclaimable = cache
        .records
        .iter()
        .filter(|r| r.reclaimable())
        .fold(0u64, |t, r| t.saturating_add(r.size));
    let mut s = buildkit::Settings::of(config);
    s.budget = Some(SizeSpec::Bytes(reclaimable.saturating_sub(need)));
    s.protect_cache_mounts = protect;
    buildkit::plan(&cache.records, &s, None, now)
}

/// Plans a pass.
#[must_use]
pub fn plan(input: &Input<'_>) -> GuardPlan {
    let snap = input.snapshot;
    let config = input.config;
    let mut blocking = Vec::new();
    let docker = match &snap.buildkit {
        BuildkitSide::Ready(cache) => cache
            .filesystem
            .as_ref()
            .filter(|f| input.involved.iter().any(|i| i.dev == f.dev))
            .map(|f| (cache, f.dev)),
        _ => None,
    };

    // The cargo rules without budgets (phase 1), then with the floor as min-free (phase 3),
    // on filesystems that the BuildKit phase (2) has freed space on.
    // The guard applies every cheap rule, whatever the config switches off.
    let all_rules = Rules {
        incremental: true,
        toolchains: true,
        stale: true,
        budgets: false,
    };
    let mut settings = cargo::Settings::of(config);
    settings.rules = all_rules;
    let cheap = cargo::plan(&cargo::Input::of(
        snap,
        &settings,
        input.uses,
        input.watched,
        input.now,
    ));

    // Phase 2: unused BuildKit records, cache mounts kept, if Docker's filesystem is short.
    let mut buildkit_freed = 0;
    let mut phase2 = None;
    if let Some((cache, dev)) = docker {
        let short = missing(input, dev, cargo_freed(snap, &cheap, dev));
        if short > 0 {
            let p = buildkit_freeing(cache, config, short, Protect::Always, input.now);
            buildkit_freed = p.planned_bytes();
            phase2 = Some(p);
        }
    }

    let mut filesystems = snap.filesystems.clone();
    if let Some((_, dev)) = docker {
        for f in filesystems.iter_mut().filter(|f| f.dev == dev) {
            f.free_bytes = f.free_bytes.saturating_add(buildkit_freed);
        }
    }
    let mut settings = cargo::Settings::of(config);
    settings.rules = Rules {
        budgets: true,
        ..all_rules
    };
    settings.target_budget = None;
    settings.total_budget = None;
    settings.min_free = Some(input.floor);
    let mut full_input = cargo::Input::of(snap, &settings, input.uses, input.watched, input.now);
    full_input.filesystems = &filesystems;
    let full = cargo::plan(&full_input);
    for s in &full.shortfalls {
        blocking.push(format!("{}: {}", s.scope, s.why));
    }

    // Phase 4: cache mounts too, if Docker's filesystem is still short.
    let mut phase4 = None;
    if let Some((cache, dev)) = docker {
        let freed = cargo_freed(snap, &full, dev).saturating_add(buildkit_freed);
        let short = missing(input, dev, freed);
        if short > 0 {
            let need = short.saturating_add(buildkit_freed);
            let mut p = buildkit_freeing(cache, config, need, Protect::LastResort, input.now);
            let before: HashSet<usize> = phase2
                .as_ref()
                .map(|p2: &BuildkitPlan| p2.actions.iter().map(|a| a.item).collect())
                .unwrap_or_default();
            p.actions.retain(|a| !before.contains(&a.item));
            if let Some(sf) = &p.shortfall {
                blocking.push(format!("{}: {}", sf.scope, sf.why));
            }
            phase4 = Some(p);
        }
    }

    let mut phases = vec![PhasePlan::Cargo(
        Phase::Cheap,
        only(&full, |r| r != Rule::MinFree),
    )];
    if let Some(p) = phase2 {
        phases.push(PhasePlan::Buildkit(Phase::Buildkit, p));
    }
    phases.push(PhasePlan::Cargo(
        Phase::Units,
        only(&full, |r| r == Rule::MinFree),
    ));
    if let Some(p) = phase4 {
        phases.push(PhasePlan::Buildkit(Phase::CacheMounts, p));
    }
    GuardPlan { phases, blocking }
}
