//! The BuildKit cache as `scan`, `status` and `clean` show it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::why;
use cachekeeper_core::model::{
    BuildkitPlan, BuildkitSide, EngineError, Kept, Protection, PruneReport, Record, Rule,
    Shortfall, Status,
};

/// Whether the engine could be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildkitState {
    /// It answered.
    Ok,
    /// No engine on this machine (nobody asked for one): said once, quietly.
    Absent,
    /// Asked for, but it could not be used (see `error`).
    Unavailable,
    /// `[buildkit] enabled = false`, or not asked for.
    #[default]
    Off,
}

impl BuildkitState {
    /// As JSON and the history spell it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            BuildkitState::Ok => "ok",
            BuildkitState::Absent => "absent",
            BuildkitState::Unavailable => "unavailable",
            BuildkitState::Off => "off",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
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

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TypeUsage {
    pub records: u64,
    pub bytes: u64,
}

/// The BuildKit cache, as `scan` and `status` show it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BuildkitView {
    pub state: BuildkitState,
    pub host: Option<String>,
    /// The docker context the host came from (`$DOCKER_CONTEXT` or the CLI's current one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    pub error: Option<EngineError>,
    pub message: Option<String>,
    pub server_version: Option<String>,
    pub api_version: Option<String>,
    #[serde(with = "cachekeeper_core::pathcodec::option")]
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
    pub planned_by_rule: BTreeMap<Rule, u64>,
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
        side: &BuildkitSide,
        plan: Option<&BuildkitPlan>,
        budget_is_share: bool,
    ) -> BuildkitView {
        match side {
            BuildkitSide::Off => BuildkitView {
                state: BuildkitState::Off,
                ..BuildkitView::default()
            },
            BuildkitSide::Unavailable { error, quiet } => BuildkitView {
                state: if *quiet {
                    BuildkitState::Absent
                } else {
                    BuildkitState::Unavailable
                },
                message: Some(error.to_string()),
                error: Some(error.clone()),
                ..BuildkitView::default()
            },
            BuildkitSide::Ready(cache) => {
                let records = &cache.records;
                let sum = |f: &dyn Fn(&Record) -> bool| -> u64 {
                    records
                        .iter()
                        .filter(|r| f(r))
                        .fold(0, |t, r| t.saturating_add(r.size))
                };
                let mut by_type: BTreeMap<String, TypeUsage> = BTreeMap::new();
                for (kind, (n, bytes)) in cache.by_type() {
                    by_type.insert(kind, TypeUsage { records: n, bytes });
                }
                let uses: Vec<_> = records.iter().filter_map(Record::last_use).collect();
                let reclaimable = sum(&|r| r.reclaimable());
                let budget = plan.and_then(|p| p.budget_bytes);
                let mut planned_by_rule: BTreeMap<Rule, u64> = BTreeMap::new();
                for a in plan.map(|p| p.actions.as_slice()).unwrap_or_default() {
                    let e = planned_by_rule.entry(a.rule).or_default();
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
                    state: BuildkitState::Ok,
                    host: Some(cache.engine.host.to_string()),
                    context: cache.engine.context.clone(),
                    server_version: Some(cache.engine.server_version.clone()),
                    api_version: Some(cache.engine.api_version.clone()),
                    root_dir: cache.root_dir().cloned(),
                    records: records.len(),
                    total_bytes: sum(&|_| true),
                    reclaimable_bytes: reclaimable,
                    in_use_bytes: sum(&|r| r.in_use),
                    shared_bytes: sum(&|r| r.shared && !r.in_use),
                    by_type,
                    oldest_last_used: uses
                        .iter()
                        .min()
                        .map(|t| cachekeeper_core::units::rfc3339(*t)),
                    newest_last_used: uses
                        .iter()
                        .max()
                        .map(|t| cachekeeper_core::units::rfc3339(*t)),
                    budget_bytes: budget,
                    over_budget_bytes: budget.map_or(0, |b| reclaimable.saturating_sub(b)),
                    planned_bytes: plan.map_or(0, BuildkitPlan::planned_bytes),
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
                            created_at: r.created_at.map(cachekeeper_core::units::rfc3339),
                            last_used_at: r.last_used_at.map(cachekeeper_core::units::rfc3339),
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

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordActionView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub last_used: Option<String>,
    pub rule: Rule,
    pub reason: String,
    pub planned_bytes: u64,
    /// As the engine reports it (in a dry run: the record's size).
    pub reclaimed_bytes: u64,
    pub status: Status,
    pub error: Option<String>,
}

/// The BuildKit part of `clean`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BuildkitCleanView {
    /// As in [`BuildkitView`].
    pub state: BuildkitState,
    pub message: Option<String>,
    pub reclaimed_bytes: u64,
    pub actions: Vec<RecordActionView>,
    pub errors: u64,
    pub shortfall: Option<Shortfall>,
    /// Records the rules would remove but a protection keeps, by protection.
    pub kept: BTreeMap<Protection, Kept>,
    /// When the clean pruned nothing, or less than the budget needs: why, in one line.
    pub blocked: Option<String>,
    /// The run's deadline for the engine passed with records left to prune.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
}

impl BuildkitCleanView {
    #[must_use]
    pub fn build(
        side: &BuildkitSide,
        plan: Option<&BuildkitPlan>,
        sweep: Option<&PruneReport>,
    ) -> BuildkitCleanView {
        let summary = BuildkitView::build(side, plan, false);
        let (BuildkitSide::Ready(cache), Some(plan), Some(sweep)) = (side, plan, sweep) else {
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
                let rec = &cache.records[a.item];
                RecordActionView {
                    id: rec.id.clone(),
                    kind: rec.kind.clone(),
                    description: rec.description.clone(),
                    last_used: rec.last_use().map(cachekeeper_core::units::rfc3339),
                    rule: a.rule,
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
            deadline: sweep.deadline.clone(),
        }
    }
}
