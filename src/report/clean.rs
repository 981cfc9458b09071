//! What `clean` and `run-now` show: every action with its status, what was freed, what was
//! kept and why.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::buildkit::BuildkitCleanView;
use super::survey::{ConfigOnDisk, Failure, SkippedProfile, failures, skipped_profiles};
use super::{Exit, SCHEMA_VERSION, why};
use cachekeeper_core::model::{
    CargoPlan, Kept, Mode, Outcome, Part, Protection, Rebuild, Rule, Shortfall, Sides, Snapshot,
    Status, SweepReport,
};

/// What an action removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemKind {
    Unit,
    Incremental,
    Orphan,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActionView {
    #[serde(with = "cachekeeper_core::pathcodec")]
    pub target: PathBuf,
    pub profile: String,
    pub item: ItemKind,
    pub name: String,
    pub rule: Rule,
    pub reason: String,
    #[serde(with = "cachekeeper_core::pathcodec::list")]
    pub paths: Vec<PathBuf>,
    /// What the scan expected this to free.
    pub planned_bytes: u64,
    /// What it freed (in a dry run: would free).
    pub reclaimed_bytes: u64,
    /// Compile seconds it costs to get back (see `model::cost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild_seconds: Option<f64>,
    pub status: Status,
    pub errors: Vec<String>,
    /// Mount points found inside: kept, with the directories holding them.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "cachekeeper_core::pathcodec::list"
    )]
    pub mount_points: Vec<PathBuf>,
}

/// What `clean` shows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CleanView {
    pub version: u32,
    pub dry_run: bool,
    /// The moment the plan was made for (RFC 3339, UTC, to the nanosecond): ages and rules are
    /// measured to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_at: Option<String>,
    /// Freed by a real run (cargo and BuildKit); in a dry run, what a real run would free.
    pub reclaimed_bytes: u64,
    /// The cargo side's part of `reclaimed_bytes`.
    pub cargo_reclaimed_bytes: u64,
    pub removed_files: u64,
    /// What the scan expected the plan to free.
    pub planned_bytes: u64,
    /// Compile seconds it costs to get back what was removed (in a dry run: would be).
    #[serde(default)]
    pub rebuild_seconds: f64,
    /// The next builds' rebuild of what the plan removes, as cargo schedules it: wall and CPU
    /// seconds, on how many jobs, and whether every time was measured.
    #[serde(default)]
    pub rebuild: Rebuild,
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
    pub sides: Sides,
    pub buildkit: BuildkitCleanView,
    /// When the config file on disk no longer validates (the daemon ran on the one it loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_on_disk: Option<ConfigOnDisk>,
}

impl CleanView {
    /// The view of a finished clean job.
    #[must_use]
    pub fn from_outcome(o: &Outcome) -> CleanView {
        let bk = BuildkitCleanView::build(
            &o.snapshot.buildkit,
            o.buildkit_plan.as_ref(),
            o.buildkit_sweep.as_ref(),
        );
        let mut view = CleanView::build(&o.snapshot, &o.plan, &o.sweep, bk, o.mode, o.sides);
        view.planned_at = Some(
            chrono::DateTime::<chrono::Utc>::from(o.planned_at)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        );
        view
    }

    #[must_use]
    pub fn build(
        survey: &Snapshot,
        plan: &CargoPlan,
        sweep: &SweepReport,
        buildkit: BuildkitCleanView,
        mode: Mode,
        sides: Sides,
    ) -> CleanView {
        let mut by_rule: BTreeMap<Rule, u64> = BTreeMap::new();
        let actions: Vec<ActionView> = sweep
            .results
            .iter()
            .map(|r| {
                let a = &plan.actions[r.action];
                let t = &survey.targets[a.item.target];
                let (item, name, profile, paths) = match a.item.part {
                    Part::Unit(u) => {
                        let u = &t.units[u];
                        (ItemKind::Unit, u.name(), u.key.profile, u.paths.clone())
                    }
                    Part::Incremental(i) => {
                        let i = &t.incremental[i];
                        (
                            ItemKind::Incremental,
                            i.name.clone(),
                            i.profile,
                            vec![i.path.clone()],
                        )
                    }
                    Part::Orphan(o) => {
                        let o = &t.orphans[o];
                        (
                            ItemKind::Orphan,
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
                    rebuild_seconds: a.rebuild_seconds,
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
                let t = &survey.targets[a.item.target];
                let profile = match a.item.part {
                    Part::Unit(u) => t.units[u].key.profile,
                    Part::Incremental(i) => t.incremental[i].profile,
                    Part::Orphan(o) => t.orphans[o].key.profile,
                };
                (a.item.target, profile)
            })
            .collect();
        let skipped_profiles = skipped_profiles(survey, &busy_since);
        let rebuild_seconds = actions
            .iter()
            .filter(|a| {
                matches!(
                    a.status,
                    Status::Removed | Status::WouldRemove | Status::Partial
                )
            })
            .filter_map(|a| a.rebuild_seconds)
            .sum();
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
            planned_at: None,
            reclaimed_bytes: sweep
                .reclaimed_bytes
                .saturating_add(buildkit.reclaimed_bytes),
            cargo_reclaimed_bytes: sweep.reclaimed_bytes,
            removed_files: sweep.removed_files,
            planned_bytes: plan.planned_bytes(),
            rebuild_seconds,
            rebuild: plan.rebuild(),
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
            config_on_disk: None,
        }
    }
}

impl CleanView {
    /// The exit code a clean of this outcome gives: 1 when something could not be read or
    /// removed, 3 when the BuildKit side was asked for but could not be done, else 0.
    #[must_use]
    pub fn exit(&self) -> Exit {
        use super::buildkit::BuildkitState;
        let bk = &self.buildkit;
        let buildkit_not_done = match bk.state {
            BuildkitState::Unavailable => true,
            BuildkitState::Absent => !self.sides.cargo,
            BuildkitState::Ok => bk.errors > 0,
            BuildkitState::Off => false,
        };
        if self.errors > 0 || !self.failed.is_empty() || !self.search_errors.is_empty() {
            Exit::Failure
        } else if buildkit_not_done {
            Exit::BuildkitNotDone
        } else {
            Exit::Ok
        }
    }
}
