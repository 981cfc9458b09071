//! What `history` and `healthcheck` show.

use serde::{Deserialize, Serialize};

use super::{Exit, SCHEMA_VERSION};
use crate::model::{RunRecord, Totals};

/// Past runs, oldest first, and the totals of every run ever recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryView {
    pub version: u32,
    pub runs: Vec<RunRecord>,
    pub totals: Totals,
    /// When the config file on disk no longer validates (the daemon answers on the one it
    /// loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_on_disk: Option<super::ConfigOnDisk>,
}

impl HistoryView {
    #[must_use]
    pub fn new(runs: Vec<RunRecord>, totals: Totals) -> HistoryView {
        HistoryView {
            version: SCHEMA_VERSION,
            runs,
            totals,
            config_on_disk: None,
        }
    }
}

/// Whether the daemon is up and well.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HealthView {
    pub version: u32,
    pub healthy: bool,
    /// The daemon's, when one answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<super::ErrorView>,
}

impl HealthView {
    /// Unhealthy, and why; `pid` of the daemon, if one answered.
    #[must_use]
    pub fn unhealthy(pid: Option<u32>, why: &str) -> HealthView {
        HealthView {
            version: SCHEMA_VERSION,
            healthy: false,
            pid,
            error: Some(super::ErrorView::new(why, Exit::Failure)),
        }
    }

    #[must_use]
    pub fn exit(&self) -> Exit {
        if self.healthy {
            Exit::Ok
        } else {
            Exit::Failure
        }
    }
}
