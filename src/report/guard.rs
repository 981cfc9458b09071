//! The guard's views: one pass (free space before and after on each filesystem involved, what
//! each phase reclaimed, what blocked the floor) and a command run under the guard.

use std::path::PathBuf;

use serde::Serialize;

use super::BuildkitState;
use cachekeeper_core::model::Phase;

#[derive(Clone, Debug, Serialize)]
pub struct FsFree {
    #[serde(with = "cachekeeper_core::pathcodec")]
    pub path: PathBuf,
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub floor_bytes: u64,
}

impl FsFree {
    #[must_use]
    pub fn holds(&self) -> bool {
        self.free_bytes >= self.floor_bytes
    }
}

/// What one phase did.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseResult {
    pub phase: Phase,
    pub reclaimed_bytes: u64,
    pub actions: usize,
}

/// The BuildKit side as the guard found it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Docker {
    pub state: BuildkitState,
    pub message: Option<String>,
    /// Docker's root dir, when the engine answers and it is reachable from here.
    #[serde(with = "cachekeeper_core::pathcodec::option")]
    pub root_dir: Option<PathBuf>,
}

/// One guard pass.
#[derive(Clone, Debug, Serialize)]
pub struct Pass {
    /// Planned only: nothing was removed, and `after` is what the floor would be.
    pub dry_run: bool,
    pub before: Vec<FsFree>,
    pub after: Vec<FsFree>,
    pub phases: Vec<PhaseResult>,
    pub reclaimed_bytes: u64,
    pub holds: bool,
    /// Why the floor was not reached (protected data, what is in use).
    pub blocking: Vec<String>,
    /// Whether the BuildKit cache could be part of it.
    pub buildkit: Docker,
}

/// What happened while a command ran under the guard.
#[derive(Clone, Debug, Serialize)]
pub struct Watch {
    /// The JSON schema's version, as every document carries.
    pub version: u32,
    pub command: Vec<String>,
    pub exit_code: i32,
    /// Passes: one before the command, then one each time free space fell under the floor.
    pub passes: Vec<Pass>,
    pub reclaimed_bytes: u64,
    /// The least free space seen on any involved filesystem while the command ran.
    pub min_free_bytes: Option<u64>,
    /// Whether the floor held at every check while the command ran.
    pub held: bool,
}
