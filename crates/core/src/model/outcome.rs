//! What a run did: per planned action, its status and what it freed; the whole run's outcome.

use serde::{Deserialize, Serialize};

use super::{BuildkitPlan, CargoPlan, Sides, Snapshot};

/// Whether a run removes, or only says what it would remove (the same code path either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    DryRun,
    Execute,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Removed,
    WouldRemove,
    /// A build holds the profile's lock (or rustc the session's).
    SkippedBusy,
    /// A build used the unit after the plan was made.
    SkippedUsed,
    /// A unit depending on it was kept.
    SkippedDependentKept,
    /// The target dir is not the one scanned any more, or lost its cargo tag.
    SkippedChanged,
    /// Asked to stop before this action.
    Stopped,
    /// Some of it could not be removed (see `errors`).
    Partial,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActionResult {
    /// Index into the plan's actions.
    pub action: usize,
    pub status: Status,
    /// Freed (or, in a dry run, that would be freed).
    pub reclaimed_bytes: u64,
    pub files: u64,
    pub errors: Vec<String>,
    /// Mount points inside what was removed: kept, with the directories holding them (nothing
    /// on another mount is ever entered).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "crate::pathcodec::list"
    )]
    pub mount_points: Vec<std::path::PathBuf>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SweepReport {
    pub reclaimed_bytes: u64,
    pub removed_files: u64,
    pub results: Vec<ActionResult>,
    /// Errors that stopped a removal (not counting files that vanished).
    pub errors: u64,
}

/// What happened to one planned record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordResult {
    /// Index into the plan's actions.
    pub action: usize,
    pub status: Status,
    /// Freed as the engine reports it (in a dry run: the record's size).
    pub reclaimed_bytes: u64,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PruneReport {
    pub results: Vec<RecordResult>,
    pub reclaimed_bytes: u64,
    pub errors: u64,
    /// The run's deadline for the engine passed before every record was pruned: what was left.
    pub deadline: Option<String>,
}

/// Everything a clean measured, decided and did.
pub struct Outcome {
    pub snapshot: Snapshot,
    pub plan: CargoPlan,
    pub sweep: SweepReport,
    pub buildkit_plan: Option<BuildkitPlan>,
    pub buildkit_sweep: Option<PruneReport>,
    pub mode: Mode,
    pub sides: Sides,
    /// The moment the plans were made for (the run's one clock read).
    pub planned_at: std::time::SystemTime,
}

impl Outcome {
    /// Whether the BuildKit side was asked for but could not be done.
    #[must_use]
    pub fn buildkit_not_done(&self) -> bool {
        match &self.snapshot.buildkit {
            super::BuildkitSide::Unavailable { quiet, .. } => !quiet || !self.sides.cargo,
            super::BuildkitSide::Ready(_) => {
                self.buildkit_sweep.as_ref().is_some_and(|s| s.errors > 0)
            }
            super::BuildkitSide::Off => false,
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
