//! Output for people and scripts. Each command builds one view (a plain, serializable
//! struct) from what it measured and did; `--json` prints the view, otherwise [`human`]
//! renders it. One source, so the two never disagree.
//!
//! The JSON documents carry `"version": 1`; fields are only ever added within a version.

pub mod human;
pub mod why;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::buildkit::{self, EngineError};
use crate::inventory::{ByKind, Layout, ProfileState, ScanErrors, TargetDir};
use crate::lastuse::Signal;
use crate::policy::{Item, Kept, Plan, Protection, Rule, Shortfall};
use crate::survey::Survey;
use crate::sweep::{Mode, Status, SweepReport};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
pub struct ProfileView {
    pub name: String,
    pub state: ProfileState,
    pub layouts: Vec<Layout>,
    pub units: usize,
    pub bytes: u64,
    pub apparent_bytes: u64,
    pub by_kind: ByKind,
}

#[derive(Serialize)]
pub struct TargetView {
    #[serde(with = "crate::pathcodec")]
    pub path: PathBuf,
    pub bytes: u64,
    pub apparent_bytes: u64,
    pub files: u64,
    pub units: usize,
    pub incremental_dirs: usize,
    pub orphans: usize,
    pub layouts: Vec<Layout>,
    pub last_use_signal: Signal,
    pub by_kind: ByKind,
    pub profiles: Vec<ProfileView>,
    pub budget_bytes: Option<u64>,
    pub over_budget_bytes: u64,
    /// What a run now would free here.
    pub reclaimable_bytes: u64,
    pub reclaimable_by_rule: BTreeMap<Rule, u64>,
    /// Bytes of units no rule may touch now (used within min-age, or a build runs).
    pub protected_bytes: u64,
    /// What the rules would remove now but a protection keeps, by protection.
    pub kept: BTreeMap<Protection, Kept>,
    pub notes: Vec<String>,
    pub errors: ScanErrors,
}

#[derive(Serialize)]
pub struct FilesystemView {
    #[serde(with = "crate::pathcodec")]
    pub path: PathBuf,
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub min_free_bytes: Option<u64>,
    pub below_min_free: bool,
}

#[derive(Serialize)]
pub struct TotalView {
    pub bytes: u64,
    pub apparent_bytes: u64,
    pub budget_bytes: Option<u64>,
    pub over_budget_bytes: u64,
    pub reclaimable_bytes: u64,
    pub reclaimable_by_rule: BTreeMap<Rule, u64>,
    /// What the rules would remove now but a protection keeps, by protection.
    pub kept: BTreeMap<Protection, Kept>,
    /// When a run now would free nothing although the rules want something, or a budget
    /// falls short: what blocks it, in one line.
    pub blocked: Option<String>,
}

/// A profile a run leaves alone whole.
#[derive(Serialize, Clone)]
pub struct SkippedProfile {
    #[serde(with = "crate::pathcodec")]
    pub target: PathBuf,
    pub profile: String,
    pub protection: Protection,
    pub reason: &'static str,
    /// Everything in it.
    pub bytes: u64,
}

/// Profiles left alone: those a build holds locked at the scan, or that have no cargo lock
/// file, and (after a sweep) those a build locked since.
fn skipped_profiles(survey: &Survey, busy_since: &[(usize, u16)]) -> Vec<SkippedProfile> {
    let mut out = Vec::new();
    for (t, target) in survey.targets.iter().enumerate() {
        for (p, profile) in target.profiles.iter().enumerate() {
            let protection = match profile.state {
                ProfileState::Busy => Protection::BuildRunning,
                ProfileState::Unlockable
                    if target.units.iter().any(|u| usize::from(u.key.profile) == p) =>
                {
                    Protection::NoCargoLock
                }
                _ if busy_since.contains(&(t, u16::try_from(p).unwrap_or(u16::MAX))) => {
                    Protection::BuildRunning
                }
                _ => continue,
            };
            out.push(SkippedProfile {
                target: target.path.clone(),
                profile: profile.rel.display().to_string(),
                protection,
                reason: protection.describe(),
                bytes: profile.usage.total().bytes,
            });
        }
    }
    out
}

#[derive(Serialize)]
pub struct Failure {
    #[serde(with = "crate::pathcodec")]
    pub path: PathBuf,
    pub error: String,
}

fn failures(survey: &Survey) -> Vec<Failure> {
    survey
        .failed
        .iter()
        .map(|(p, e)| Failure {
            path: p.clone(),
            error: e.clone(),
        })
        .collect()
}

#[derive(Serialize)]
pub struct RecordView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub size: u64,
    pub in_use: bool,
    pub shared: bool,
    pub parents: Vec<String>,
    pub created_at: Option<String>,
    pub last_used_at: Option<String>,
    pub usage_count: u64,
}

#[derive(Serialize, Default)]
pub struct TypeUsage {
    pub records: u64,
    pub bytes: u64,
}

/// The BuildKit cache, as `scan` and `status` show it.
#[derive(Serialize, Default)]
pub struct BuildkitView {
    /// `ok`, `unavailable` (see `error`), `absent` (no engine on this machine) or `off`.
    pub state: &'static str,
    pub host: Option<String>,
    pub error: Option<EngineError>,
    pub message: Option<String>,
    pub server_version: Option<String>,
    pub api_version: Option<String>,
    #[serde(with = "crate::pathcodec::option")]
    pub root_dir: Option<PathBuf>,
    pub records: usize,
    pub total_bytes: u64,
    /// Neither in use nor shared with an image: what pruning can free.
    pub reclaimable_bytes: u64,
    pub in_use_bytes: u64,
    pub shared_bytes: u64,
    pub by_type: BTreeMap<String, TypeUsage>,
    pub oldest_last_used: Option<String>,
    pub newest_last_used: Option<String>,
    pub budget_bytes: Option<u64>,
    pub over_budget_bytes: u64,
    /// What a clean now would free here.
    pub planned_bytes: u64,
    pub planned_by_rule: BTreeMap<&'static str, u64>,
    pub shortfall: Option<Shortfall>,
    /// Records the rules would remove now but a protection keeps, by protection.
    pub kept: BTreeMap<Protection, Kept>,
    /// When a clean now would prune nothing, or less than the budget needs: why, in one line.
    pub blocked: Option<String>,
    pub notes: Vec<String>,
    /// Every record, as the engine lists it.
    pub items: Vec<RecordView>,
}

impl BuildkitView {
    #[must_use]
    pub fn build(
        side: &buildkit::Side,
        plan: Option<&buildkit::plan::Plan>,
        budget_is_share: bool,
    ) -> BuildkitView {
        match side {
            buildkit::Side::Off => BuildkitView {
                state: "off",
                ..BuildkitView::default()
            },
            buildkit::Side::Unavailable { error, quiet } => BuildkitView {
                state: if *quiet { "absent" } else { "unavailable" },
                message: Some(error.to_string()),
                error: Some(error.clone()),
                ..BuildkitView::default()
            },
            buildkit::Side::Ready(cache) => {
                let records = &cache.records;
                let sum = |f: &dyn Fn(&buildkit::Record) -> bool| -> u64 {
                    records
                        .iter()
                        .filter(|r| f(r))
                        .fold(0, |t, r| t.saturating_add(r.size))
                };
                let mut by_type: BTreeMap<String, TypeUsage> = BTreeMap::new();
                for (kind, (n, bytes)) in cache.by_type() {
                    by_type.insert(kind, TypeUsage { records: n, bytes });
                }
                let uses: Vec<_> = records
                    .iter()
                    .filter_map(buildkit::Record::last_use)
                    .collect();
                let reclaimable = sum(&|r| r.reclaimable());
                let budget = plan.and_then(|p| p.budget_bytes);
                let mut planned_by_rule: BTreeMap<&'static str, u64> = BTreeMap::new();
                for a in plan.map(|p| p.actions.as_slice()).unwrap_or_default() {
                    let e = planned_by_rule.entry(a.rule.name()).or_default();
                    *e = e.saturating_add(a.bytes);
                }
                let mut notes = Vec::new();
                if budget_is_share && budget.is_none() {
                    notes.push(
                        "budget is a share of Docker's filesystem, which cannot be measured from here: not enforced"
                            .into(),
                    );
                }
                let mut view = BuildkitView {
                    state: "ok",
                    host: Some(cache.engine.host.to_string()),
                    server_version: Some(cache.engine.server_version.clone()),
                    api_version: Some(cache.engine.api_version.clone()),
                    root_dir: cache.root_dir().cloned(),
                    records: records.len(),
                    total_bytes: sum(&|_| true),
                    reclaimable_bytes: reclaimable,
                    in_use_bytes: sum(&|r| r.in_use),
                    shared_bytes: sum(&|r| r.shared && !r.in_use),
                    by_type,
                    oldest_last_used: uses.iter().min().map(|t| crate::units::rfc3339(*t)),
                    newest_last_used: uses.iter().max().map(|t| crate::units::rfc3339(*t)),
                    budget_bytes: budget,
                    over_budget_bytes: budget.map_or(0, |b| reclaimable.saturating_sub(b)),
                    planned_bytes: plan.map_or(0, buildkit::plan::Plan::planned_bytes),
                    planned_by_rule,
                    shortfall: plan.and_then(|p| p.shortfall.clone()),
                    kept: plan.map(|p| p.kept.clone()).unwrap_or_default(),
                    notes,
                    items: records
                        .iter()
                        .map(|r| RecordView {
                            id: r.id.clone(),
                            kind: r.kind.clone(),
                            description: r.description.clone(),
                            size: r.size,
                            in_use: r.in_use,
                            shared: r.shared,
                            parents: r.parents.clone(),
                            created_at: r.created_at.map(crate::units::rfc3339),
                            last_used_at: r.last_used_at.map(crate::units::rfc3339),
                            usage_count: r.usage_count,
                        })
                        .collect(),
                    ..BuildkitView::default()
                };
                view.blocked = why::buildkit(&view, view.planned_bytes);
                view
            }
        }
    }
}

/// The daemon's own state, in `status` when the daemon answers.
#[derive(Serialize, Clone)]
pub struct DaemonInfo {
    pub pid: u32,
    pub started: String,
    /// When the numbers above were measured (the daemon rescans every `rescan-interval`
    /// and after each run).
    pub measured_at: Option<String>,
    /// Set when the last config reload failed (the previous config is still in force).
    pub config_error: Option<String>,
    #[serde(with = "crate::pathcodec")]
    pub state_dir: PathBuf,
    #[serde(with = "crate::pathcodec")]
    pub socket: PathBuf,
    pub schedule: String,
    pub next_run: Option<String>,
    pub running: Option<String>,
    /// Whether disk pressure can trigger a run (false right after one, until free space
    /// recovers past the hysteresis).
    pub pressure_armed: bool,
    /// The disk-pressure trigger: `off` (no `min-free`), `armed`, or `disarmed` (after a
    /// pressure run, until free space recovers).
    pub pressure: &'static str,
    pub tracking: crate::daemon::tracker::TrackStats,
    pub totals: crate::daemon::state::Totals,
    pub last_runs: Vec<crate::daemon::state::RunRecord>,
    pub errors: Vec<String>,
}

/// What `scan` and `status` show: every target dir against its budget, and the next run.
#[derive(Serialize)]
pub struct SurveyView {
    pub version: u32,
    /// `direct`: measured by this command (the daemon will answer from its index).
    pub source: &'static str,
    pub config: String,
    pub targets: Vec<TargetView>,
    pub total: TotalView,
    /// Profiles a run would leave alone whole, and why.
    pub skipped_profiles: Vec<SkippedProfile>,
    pub filesystems: Vec<FilesystemView>,
    pub toolchains: Vec<String>,
    pub shortfalls: Vec<Shortfall>,
    pub failed: Vec<Failure>,
    #[serde(with = "crate::pathcodec::list")]
    pub missing_roots: Vec<PathBuf>,
    pub search_errors: Vec<String>,
    pub buildkit: BuildkitView,
    /// Present when the daemon answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon: Option<DaemonInfo>,
}

impl SurveyView {
    #[must_use]
    pub fn build(
        survey: &Survey,
        plan: &Plan,
        buildkit: BuildkitView,
        config: String,
    ) -> SurveyView {
        let targets: Vec<TargetView> = survey
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| target_view(t, survey.signals[i], plan, i))
            .collect();
        let mut total_by_rule: BTreeMap<Rule, u64> = BTreeMap::new();
        for t in &targets {
            for (r, b) in &t.reclaimable_by_rule {
                *total_by_rule.entry(*r).or_default() += b;
            }
        }
        let bytes: u64 = targets.iter().map(|t| t.bytes).sum();
        let total = TotalView {
            bytes,
            apparent_bytes: targets.iter().map(|t| t.apparent_bytes).sum(),
            budget_bytes: plan.total_budget,
            over_budget_bytes: plan.total_budget.map_or(0, |b| bytes.saturating_sub(b)),
            reclaimable_bytes: plan.planned_bytes(),
            reclaimable_by_rule: total_by_rule,
            kept: plan.kept(),
            blocked: None,
        };
        let filesystems = survey
            .filesystems
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let min = plan.min_free.get(i).copied().flatten();
                FilesystemView {
                    path: f.path.clone(),
                    total_bytes: f.total_bytes,
                    free_bytes: f.free_bytes,
                    min_free_bytes: min,
                    below_min_free: min.is_some_and(|m| f.free_bytes < m),
                }
            })
            .collect();
        let skipped = skipped_profiles(survey, &[]);
        let mut total = total;
        total.blocked = why::cargo(
            total.reclaimable_bytes,
            &total.kept,
            &plan.shortfalls,
            &skipped,
        );
        SurveyView {
            version: SCHEMA_VERSION,
            source: "direct",
            config,
            targets,
            total,
            skipped_profiles: skipped,
            filesystems,
            toolchains: survey.toolchains.found.clone(),
            shortfalls: plan.shortfalls.clone(),
            failed: failures(survey),
            missing_roots: survey.missing_roots.clone(),
            search_errors: survey.search_errors.clone(),
            buildkit,
            daemon: None,
        }
    }
}

fn target_view(t: &TargetDir, signal: Signal, plan: &Plan, i: usize) -> TargetView {
    let total = t.usage.total();
    let tp = &plan.targets[i];
    let mut layouts: Vec<Layout> = t.profiles.iter().flat_map(|p| p.layouts.clone()).collect();
    layouts.sort();
    layouts.dedup();
    TargetView {
        path: t.path.clone(),
        bytes: total.bytes,
        apparent_bytes: total.apparent_bytes,
        files: total.files,
        units: t.units.len(),
        incremental_dirs: t.incremental.len(),
        orphans: t.orphans.len(),
        layouts,
        last_use_signal: signal,
        by_kind: t.usage,
        profiles: t
            .profiles
            .iter()
            .enumerate()
            .map(|(p, prof)| {
                let total = prof.usage.total();
                ProfileView {
                    name: prof.rel.display().to_string(),
                    state: prof.state.clone(),
                    layouts: prof.layouts.clone(),
                    units: t
                        .units
                        .iter()
                        .filter(|u| usize::from(u.key.profile) == p)
                        .count(),
                    bytes: total.bytes,
                    apparent_bytes: total.apparent_bytes,
                    by_kind: prof.usage,
                }
            })
            .collect(),
        budget_bytes: tp.budget,
        over_budget_bytes: tp.budget.map_or(0, |b| total.bytes.saturating_sub(b)),
        reclaimable_bytes: tp.planned_bytes,
        reclaimable_by_rule: tp.by_rule.clone(),
        protected_bytes: tp.protected_bytes,
        kept: tp.kept.clone(),
        notes: tp.notes.clone(),
        errors: t.errors.clone(),
    }
}

#[derive(Serialize)]
pub struct ActionView {
    #[serde(with = "crate::pathcodec")]
    pub target: PathBuf,
    pub profile: String,
    /// `unit`, `incremental` or `orphan`.
    pub item: &'static str,
    pub name: String,
    pub rule: Rule,
    pub reason: String,
    #[serde(with = "crate::pathcodec::list")]
    pub paths: Vec<PathBuf>,
    /// What the scan expected this to free.
    pub planned_bytes: u64,
    /// What it freed (in a dry run: would free).
    pub reclaimed_bytes: u64,
    pub status: Status,
    pub errors: Vec<String>,
    /// Mount points found inside: kept, with the directories holding them.
    #[serde(skip_serializing_if = "Vec::is_empty", with = "crate::pathcodec::list")]
    pub mount_points: Vec<PathBuf>,
}

#[derive(Serialize)]
pub struct RecordActionView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub last_used: Option<String>,
    pub rule: &'static str,
    pub reason: String,
    pub planned_bytes: u64,
    /// As the engine reports it (in a dry run: the record's size).
    pub reclaimed_bytes: u64,
    pub status: Status,
    pub error: Option<String>,
}

/// The BuildKit part of `clean`.
#[derive(Serialize, Default)]
pub struct BuildkitCleanView {
    /// As in [`BuildkitView`].
    pub state: &'static str,
    pub message: Option<String>,
    pub reclaimed_bytes: u64,
    pub actions: Vec<RecordActionView>,
    pub errors: u64,
    pub shortfall: Option<Shortfall>,
    /// Records the rules would remove but a protection keeps, by protection.
    pub kept: BTreeMap<Protection, Kept>,
    /// When the clean pruned nothing, or less than the budget needs: why, in one line.
    pub blocked: Option<String>,
}

impl BuildkitCleanView {
    #[must_use]
    pub fn build(
        side: &buildkit::Side,
        plan: Option<&buildkit::plan::Plan>,
        sweep: Option<&buildkit::SweepReport>,
    ) -> BuildkitCleanView {
        let summary = BuildkitView::build(side, plan, false);
        let (buildkit::Side::Ready(cache), Some(plan), Some(sweep)) = (side, plan, sweep) else {
            return BuildkitCleanView {
                state: summary.state,
                message: summary.message,
                ..BuildkitCleanView::default()
            };
        };
        let blocked = why::buildkit(&summary, sweep.reclaimed_bytes);
        let actions = sweep
            .results
            .iter()
            .map(|r| {
                let a = &plan.actions[r.action];
                let rec = &cache.records[a.record];
                RecordActionView {
                    id: rec.id.clone(),
                    kind: rec.kind.clone(),
                    description: rec.description.clone(),
                    last_used: rec.last_use().map(crate::units::rfc3339),
                    rule: a.rule.name(),
                    reason: a.reason.clone(),
                    planned_bytes: a.bytes,
                    reclaimed_bytes: r.reclaimed_bytes,
                    status: r.status.clone(),
                    error: r.error.clone(),
                }
            })
            .collect();
        BuildkitCleanView {
            state: summary.state,
            message: summary.message,
            reclaimed_bytes: sweep.reclaimed_bytes,
            actions,
            errors: sweep.errors,
            shortfall: plan.shortfall.clone(),
            kept: plan.kept.clone(),
            blocked,
        }
    }
}

/// What `clean` shows.
#[derive(Serialize)]
pub struct CleanView {
    pub version: u32,
    pub dry_run: bool,
    /// Freed by a real run (cargo and BuildKit); in a dry run, what a real run would free.
    pub reclaimed_bytes: u64,
    /// The cargo side's part of `reclaimed_bytes`.
    pub cargo_reclaimed_bytes: u64,
    pub removed_files: u64,
    /// What the scan expected the plan to free.
    pub planned_bytes: u64,
    pub reclaimed_by_rule: BTreeMap<Rule, u64>,
    pub actions: Vec<ActionView>,
    pub skipped: usize,
    /// Profiles left alone whole, and why (a build holds cargo's lock, at the scan or since).
    pub skipped_profiles: Vec<SkippedProfile>,
    /// What the rules would remove but a protection keeps, by protection.
    pub kept: BTreeMap<Protection, Kept>,
    /// When the target dirs gave back nothing although the rules wanted something, or a
    /// budget falls short: what blocked it, in one line a person can act on.
    pub blocked: Option<String>,
    pub errors: u64,
    pub shortfalls: Vec<Shortfall>,
    pub failed: Vec<Failure>,
    /// Directories the search could not enter: a target dir may hide there.
    pub search_errors: Vec<String>,
    /// Which sides the clean looked at.
    pub sides: crate::survey::Sides,
    pub buildkit: BuildkitCleanView,
}

impl CleanView {
    /// The view of a finished clean job.
    #[must_use]
    pub fn from_outcome(o: &crate::job::Outcome) -> CleanView {
        let bk = BuildkitCleanView::build(
            &o.survey.buildkit,
            o.buildkit_plan.as_ref(),
            o.buildkit_sweep.as_ref(),
        );
        CleanView::build(&o.survey, &o.plan, &o.sweep, bk, o.mode, o.sides)
    }

    #[must_use]
    pub fn build(
        survey: &Survey,
        plan: &Plan,
        sweep: &SweepReport,
        buildkit: BuildkitCleanView,
        mode: Mode,
        sides: crate::survey::Sides,
    ) -> CleanView {
        let mut by_rule: BTreeMap<Rule, u64> = BTreeMap::new();
        let actions: Vec<ActionView> = sweep
            .results
            .iter()
            .map(|r| {
                let a = &plan.actions[r.action];
                let t = &survey.targets[a.target];
                let (item, name, profile, paths) = match a.item {
                    Item::Unit(u) => {
                        let u = &t.units[u];
                        ("unit", u.name(), u.key.profile, u.paths.clone())
                    }
                    Item::Incremental(i) => {
                        let i = &t.incremental[i];
                        (
                            "incremental",
                            i.name.clone(),
                            i.profile,
                            vec![i.path.clone()],
                        )
                    }
                    Item::Orphan(o) => {
                        let o = &t.orphans[o];
                        (
                            "orphan",
                            format!("{:016x}", o.key.hash),
                            o.key.profile,
                            o.paths.clone(),
                        )
                    }
                };
                *by_rule.entry(a.rule).or_default() += r.reclaimed_bytes;
                ActionView {
                    target: t.path.clone(),
                    profile: t.profiles[usize::from(profile)].rel.display().to_string(),
                    item,
                    name,
                    rule: a.rule,
                    reason: a.reason.clone(),
                    paths,
                    planned_bytes: a.bytes,
                    reclaimed_bytes: r.reclaimed_bytes,
                    status: r.status.clone(),
                    errors: r.errors.clone(),
                    mount_points: r.mount_points.clone(),
                }
            })
            .collect();
        let skipped = actions
            .iter()
            .filter(|a| {
                !matches!(
                    a.status,
                    Status::Removed | Status::WouldRemove | Status::Partial
                )
            })
            .count();
        let busy_since: Vec<(usize, u16)> = sweep
            .results
            .iter()
            .filter(|r| r.status == Status::SkippedBusy)
            .map(|r| {
                let a = &plan.actions[r.action];
                let t = &survey.targets[a.target];
                let profile = match a.item {
                    Item::Unit(u) => t.units[u].key.profile,
                    Item::Incremental(i) => t.incremental[i].profile,
                    Item::Orphan(o) => t.orphans[o].key.profile,
                };
                (a.target, profile)
            })
            .collect();
        let skipped_profiles = skipped_profiles(survey, &busy_since);
        let kept = plan.kept();
        let blocked = why::cargo(
            sweep.reclaimed_bytes,
            &kept,
            &plan.shortfalls,
            &skipped_profiles,
        );
        CleanView {
            version: SCHEMA_VERSION,
            dry_run: mode == Mode::DryRun,
            reclaimed_bytes: sweep
                .reclaimed_bytes
                .saturating_add(buildkit.reclaimed_bytes),
            cargo_reclaimed_bytes: sweep.reclaimed_bytes,
            removed_files: sweep.removed_files,
            planned_bytes: plan.planned_bytes(),
            reclaimed_by_rule: by_rule,
            actions,
            skipped,
            skipped_profiles,
            kept,
            blocked,
            errors: sweep.errors,
            shortfalls: plan.shortfalls.clone(),
            failed: failures(survey),
            search_errors: survey.search_errors.clone(),
            sides,
            buildkit,
        }
    }
}
