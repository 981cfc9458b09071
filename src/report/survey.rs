//! What `scan` and `status` show: every target dir against its budget, the filesystems, the
//! BuildKit cache, what the next run would do, and (from the daemon) its own state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::buildkit::BuildkitView;
use super::{Exit, SCHEMA_VERSION, why};
use cachekeeper_core::config::{Config, SizeSpec};
use cachekeeper_core::model::{
    BuildkitPlan, ByKind, CargoPlan, Kept, Layout, ProfileState, Protection, Rebuild, Rule,
    RunRecord, ScanErrors, Shortfall, Signal, Snapshot, TargetDir, Totals, TrackStats,
};

/// Who measured what a status shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// This command, now.
    Direct,
    /// The daemon, at `daemon.measured_at`.
    Daemon,
}

/// The disk-pressure trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// No `min-free`.
    Off,
    Armed,
    /// After a pressure run, until free space recovers.
    Disarmed,
}

/// A config file on disk that does not validate, beside a daemon's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfigOnDisk {
    pub valid: bool,
    pub error: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProfileView {
    pub name: String,
    pub state: ProfileState,
    pub layouts: Vec<Layout>,
    pub units: usize,
    pub bytes: u64,
    pub apparent_bytes: u64,
    pub by_kind: ByKind,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TargetView {
    #[serde(with = "cachekeeper_core::pathcodec")]
    pub path: PathBuf,
    /// Where the filesystem holding it is mounted (empty when unknown).
    #[serde(default, with = "cachekeeper_core::pathcodec")]
    pub mountpoint: PathBuf,
    /// The daemon's: when this target dir was last walked; its numbers since are kept current
    /// by inotify events (a target dir a build wrote in is walked again when the build ends).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "cachekeeper_core::units::time::option"
    )]
    pub walked_at: Option<SystemTime>,
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
    /// Compile seconds it would cost to get that back.
    #[serde(default)]
    pub rebuild_seconds: f64,
    /// The next build's rebuild of that, as cargo schedules it.
    #[serde(default)]
    pub rebuild: Rebuild,
    /// The units dearest to rebuild (with `scan`: every unit, dearest first).
    #[serde(default)]
    pub costliest: Vec<UnitCost>,
    /// Bytes of units no rule may touch now (used within min-age, or a build runs).
    pub protected_bytes: u64,
    /// What the rules would remove now but a protection keeps, by protection.
    pub kept: BTreeMap<Protection, Kept>,
    pub notes: Vec<String>,
    pub errors: ScanErrors,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FilesystemView {
    #[serde(with = "cachekeeper_core::pathcodec")]
    pub path: PathBuf,
    /// node_exporter's labels: the mount's source, point and type.
    #[serde(default)]
    pub device: String,
    #[serde(default, with = "cachekeeper_core::pathcodec")]
    pub mountpoint: PathBuf,
    #[serde(default)]
    pub fstype: String,
    pub total_bytes: u64,
    /// Available to unprivileged users (`f_bavail`; node_exporter's `avail`).
    pub free_bytes: u64,
    /// Free including root's reserve (`f_bfree`; node_exporter's `free`).
    #[serde(default)]
    pub all_free_bytes: u64,
    pub min_free_bytes: Option<u64>,
    pub below_min_free: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TotalView {
    pub bytes: u64,
    pub apparent_bytes: u64,
    pub budget_bytes: Option<u64>,
    pub over_budget_bytes: u64,
    pub reclaimable_bytes: u64,
    pub reclaimable_by_rule: BTreeMap<Rule, u64>,
    /// Compile seconds it would cost to get back what a run now frees, and the budgets' part.
    #[serde(default)]
    pub rebuild_seconds: f64,
    #[serde(default)]
    pub budget_rebuild_seconds: f64,
    /// The next builds' rebuild of what a run now frees, as cargo schedules it.
    #[serde(default)]
    pub rebuild: Rebuild,
    /// What the rules would remove now but a protection keeps, by protection.
    pub kept: BTreeMap<Protection, Kept>,
    /// When a run now would free nothing although the rules want something, or a budget
    /// falls short: what blocks it, in one line.
    pub blocked: Option<String>,
}

/// What one unit costs to rebuild.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnitCost {
    pub name: String,
    pub profile: String,
    /// What removing it alone gives back.
    pub bytes: u64,
    /// Its last compile (or build-script run) time.
    pub build_seconds: f64,
    /// `false` when estimated from size (cargo's timestamps missing or implausible).
    pub measured: bool,
}

/// How many units a target dir's view names as the dearest (all of them with `scan`).
const COSTLIEST: usize = 5;

/// A profile a run leaves alone whole.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SkippedProfile {
    #[serde(with = "cachekeeper_core::pathcodec")]
    pub target: PathBuf,
    pub profile: String,
    pub protection: Protection,
    pub reason: String,
    /// Everything in it.
    pub bytes: u64,
}

/// Profiles left alone: those a build holds locked at the scan, or that have no cargo lock
/// file, and (after a sweep) those a build locked since.
pub(crate) fn skipped_profiles(
    survey: &Snapshot,
    busy_since: &[(usize, u16)],
) -> Vec<SkippedProfile> {
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
                reason: protection.describe().to_string(),
                bytes: profile.usage.total().bytes,
            });
        }
    }
    out
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Failure {
    #[serde(with = "cachekeeper_core::pathcodec")]
    pub path: PathBuf,
    pub error: String,
}

pub(crate) fn failures(survey: &Snapshot) -> Vec<Failure> {
    survey
        .failed
        .iter()
        .map(|(p, e)| Failure {
            path: p.clone(),
            error: e.clone(),
        })
        .collect()
}

/// How the daemon keeps its numbers current: target dirs are walked at start, every
/// `full-rescan-interval` and when events were lost; in between, only those that changed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IndexView {
    #[serde(with = "cachekeeper_core::units::time::option")]
    pub last_full_walk: Option<SystemTime>,
    /// Target dirs walked since the daemon started, by why (`start`, `full-rescan-interval`,
    /// `overflow`, `config`, `refresh`, `retry`, `no-watches`, `changed`, `new-target-dir`,
    /// `watch-limit`).
    pub walks: BTreeMap<String, u64>,
    /// The last refresh: target dirs it walked, and those it took as they were.
    pub walked_last: usize,
    pub kept_last: usize,
    /// The last refresh: units it looked at, and those it took as they were (in the target
    /// dirs it kept, and those a build left alone in the dirs it walked).
    #[serde(default)]
    pub units_walked_last: usize,
    #[serde(default)]
    pub units_kept_last: usize,
}

/// The run the daemon is carrying out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningView {
    /// What started it (`schedule`, `pressure`, `manual`).
    pub trigger: String,
    pub since: SystemTime,
}

/// [`RunningView`] as the text `status --json` has always carried: `"manual since <time>"`.
mod running_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use super::RunningView;
    use cachekeeper_core::units::{parse_rfc3339, rfc3339};

    pub fn serialize<S: Serializer>(r: &Option<RunningView>, s: S) -> Result<S::Ok, S::Error> {
        match r {
            Some(r) => s.serialize_str(&format!("{} since {}", r.trigger, rfc3339(r.since))),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RunningView>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                text.split_once(" since ")
                    .and_then(|(trigger, t)| {
                        Some(RunningView {
                            trigger: trigger.to_string(),
                            since: parse_rfc3339(t)?,
                        })
                    })
                    .ok_or_else(|| {
                        D::Error::custom(format!("not `<trigger> since <time>`: {text:?}"))
                    })
            })
            .transpose()
    }
}

/// The daemon's own state, in `status` when the daemon answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    #[serde(with = "cachekeeper_core::units::time")]
    pub started: SystemTime,
    /// When the numbers above were measured (the daemon rescans every `rescan-interval`
    /// and after each run; `status --refresh` asks it to first).
    #[serde(with = "cachekeeper_core::units::time::option")]
    pub measured_at: Option<SystemTime>,
    /// How long ago that was, when the daemon answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_seconds_ago: Option<u64>,
    /// Set when the last config reload failed (the previous config is still in force).
    pub config_error: Option<String>,
    #[serde(with = "cachekeeper_core::pathcodec")]
    pub state_dir: PathBuf,
    /// Why history or last-use times cannot be kept in the state dir now (kept in memory
    /// meanwhile): the daemon is degraded, and `healthcheck` says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
    #[serde(with = "cachekeeper_core::pathcodec")]
    pub socket: PathBuf,
    pub schedule: String,
    /// This host's delay after each scheduled time (`schedule-jitter`), in seconds.
    #[serde(default)]
    pub schedule_delay_seconds: u64,
    #[serde(with = "cachekeeper_core::units::time::option")]
    pub next_run: Option<SystemTime>,
    /// The run under way: written `"<trigger> since <time>"`.
    #[serde(with = "running_text")]
    pub running: Option<RunningView>,
    /// A rescan is under way (the numbers above are from the one before it).
    #[serde(default)]
    pub rescanning: bool,
    /// Whether disk pressure can trigger a run (false right after one, until free space
    /// recovers past the hysteresis).
    pub pressure_armed: bool,
    /// The disk-pressure trigger: `off` (no `min-free`), `armed`, or `disarmed` (after a
    /// pressure run, until free space recovers).
    pub pressure: Trigger,
    pub tracking: TrackStats,
    /// How the numbers above are kept current.
    #[serde(default)]
    pub index: IndexView,
    /// Where metrics are served, when they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    pub totals: Totals,
    pub last_runs: Vec<RunRecord>,
    pub errors: Vec<String>,
}

/// What `scan` and `status` show: every target dir against its budget, and the next run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SurveyView {
    pub version: u32,
    /// `direct`: measured by this command; `daemon`: the daemon's last measurement.
    pub source: Source,
    pub config: String,
    pub targets: Vec<TargetView>,
    pub total: TotalView,
    /// Profiles a run would leave alone whole, and why.
    pub skipped_profiles: Vec<SkippedProfile>,
    pub filesystems: Vec<FilesystemView>,
    pub toolchains: Vec<String>,
    pub shortfalls: Vec<Shortfall>,
    pub failed: Vec<Failure>,
    #[serde(with = "cachekeeper_core::pathcodec::list")]
    pub missing_roots: Vec<PathBuf>,
    pub search_errors: Vec<String>,
    pub buildkit: BuildkitView,
    /// Present when the daemon answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<DaemonInfo>,
    /// When the config file on disk no longer validates (the daemon answers on the one it
    /// loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_on_disk: Option<ConfigOnDisk>,
    /// Without a daemon: the runs the state dir's history holds (`clean` by hand, a timer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<PastRuns>,
}

/// The last runs and the totals of a state dir's history.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PastRuns {
    pub totals: Totals,
    pub last_runs: Vec<RunRecord>,
    #[serde(with = "cachekeeper_core::pathcodec")]
    pub state_dir: PathBuf,
}

impl SurveyView {
    /// The view of a snapshot and its plans under `config` (what `scan`, `status` and the
    /// daemon's index show).
    #[must_use]
    pub fn of(
        config: &Config,
        snapshot: &Snapshot,
        plan: &CargoPlan,
        buildkit_plan: Option<&BuildkitPlan>,
    ) -> SurveyView {
        let share = matches!(config.buildkit.budget, Some(SizeSpec::Percent(_)));
        let bk = BuildkitView::build(&snapshot.buildkit, buildkit_plan, share);
        SurveyView::build(snapshot, plan, bk, config.source.to_string())
    }

    /// 1 when something could not be read: a target dir that could not be scanned, or a
    /// directory the search could not enter (a target dir may hide there).
    #[must_use]
    pub fn exit(&self) -> Exit {
        if self.failed.is_empty() && self.search_errors.is_empty() {
            Exit::Ok
        } else {
            Exit::Failure
        }
    }

    #[must_use]
    pub fn build(
        survey: &Snapshot,
        plan: &CargoPlan,
        buildkit: BuildkitView,
        config: String,
    ) -> SurveyView {
        let targets: Vec<TargetView> = survey
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut v = target_view(t, plan.targets[i].signal, plan, i);
                if let Some(fs) = t.fs.of(&survey.filesystems) {
                    v.mountpoint.clone_from(&fs.mountpoint);
                }
                v
            })
            .collect();
        let mut total_by_rule: BTreeMap<Rule, u64> = BTreeMap::new();
        for t in &targets {
            for (r, b) in &t.reclaimable_by_rule {
                *total_by_rule.entry(*r).or_default() += b;
            }
        }
        let bytes: u64 = targets.iter().map(|t| t.bytes).sum();
        let (rebuild_seconds, budget_rebuild_seconds) = plan.rebuild_seconds();
        let total = TotalView {
            rebuild_seconds,
            budget_rebuild_seconds,
            rebuild: plan.rebuild(),
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
                    device: f.device.clone(),
                    mountpoint: f.mountpoint.clone(),
                    fstype: f.fstype.clone(),
                    total_bytes: f.total_bytes,
                    free_bytes: f.free_bytes,
                    all_free_bytes: f.all_free_bytes,
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
            source: Source::Direct,
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
            config_on_disk: None,
            history: None,
        }
    }
}

/// Every unit of `t`, dearest to rebuild first.
fn unit_costs(t: &TargetDir) -> Vec<UnitCost> {
    let mut v: Vec<UnitCost> = t
        .units
        .iter()
        .map(|u| {
            let c = u.build_cost();
            UnitCost {
                name: u.name(),
                profile: t.profiles[usize::from(u.key.profile)]
                    .rel
                    .display()
                    .to_string(),
                bytes: u.reclaimable,
                build_seconds: c.seconds,
                measured: c.measured,
            }
        })
        .collect();
    v.sort_by(|a, b| {
        b.build_seconds
            .total_cmp(&a.build_seconds)
            .then(a.name.cmp(&b.name))
    });
    v
}

impl SurveyView {
    /// Lists every unit's cost in each target dir's view (`scan` shows them; `status` keeps
    /// the few dearest).
    pub fn with_every_unit(&mut self, snapshot: &Snapshot) {
        for (view, t) in self.targets.iter_mut().zip(&snapshot.targets) {
            view.costliest = unit_costs(t);
        }
    }
}

fn target_view(t: &TargetDir, signal: Signal, plan: &CargoPlan, i: usize) -> TargetView {
    let total = t.usage.total();
    let mut costliest = unit_costs(t);
    costliest.truncate(COSTLIEST);
    // Held by the daemon's view until the next refresh: not room for every unit.
    costliest.shrink_to_fit();
    let tp = &plan.targets[i];
    let mut layouts: Vec<Layout> = t.profiles.iter().flat_map(|p| p.layouts.clone()).collect();
    layouts.sort();
    layouts.dedup();
    TargetView {
        path: t.path.clone(),
        mountpoint: PathBuf::new(),
        walked_at: None,
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
        rebuild_seconds: tp.rebuild_seconds,
        rebuild: tp.rebuild,
        costliest,
        protected_bytes: tp.protected_bytes,
        kept: tp.kept.clone(),
        notes: tp.notes.clone(),
        errors: t.errors.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Times are values in the view and text only in its JSON, which keeps its old shape.
    #[test]
    fn the_running_run_and_times_are_written_as_they_always_were() {
        #[derive(Serialize, Deserialize)]
        struct Doc {
            #[serde(with = "running_text")]
            running: Option<RunningView>,
            #[serde(with = "cachekeeper_core::units::time::option")]
            next_run: Option<SystemTime>,
        }
        let since = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let doc = Doc {
            running: Some(RunningView {
                trigger: "pressure".into(),
                since,
            }),
            next_run: None,
        };
        let text = serde_json::to_string(&doc).unwrap();
        assert_eq!(
            text,
            r#"{"running":"pressure since 2026-11-18T11:06:40Z","next_run":null}"#
        );
        let back: Doc = serde_json::from_str(&text).unwrap();
        assert_eq!(back.running, doc.running);
        assert!(serde_json::from_str::<Doc>(r#"{"running":"soon","next_run":null}"#).is_err());
    }
}
