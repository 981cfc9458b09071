//! What `doctor` found: findings with a stable id, a severity, where, why and the fix, grouped
//! by project (a build context) and for this machine.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Exit, SCHEMA_VERSION};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable: `dummy-main`, `context-target`, `shared-cache-mount`, `unbounded-cache-mounts`,
    /// `inotify-limit`, `noatime-without-daemon`, `target-dir-outside-roots`, `cargo-layout`,
    /// `docker-engine`, `daemon`, `config`, `dockerfile-unreadable`.
    pub id: String,
    pub severity: Severity,
    /// The project (build context) it concerns; `None` for this machine.
    #[serde(with = "cachekeeper_core::pathcodec::option")]
    pub project: Option<PathBuf>,
    #[serde(with = "cachekeeper_core::pathcodec::option")]
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    /// What is wrong, and why it matters, in one sentence.
    pub why: String,
    pub fix: String,
    /// The bytes it concerns, where it is about a size (`context-target`: what the context
    /// sends of that target dir).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DoctorView {
    pub version: u32,
    /// Dockerfiles looked at.
    #[serde(with = "cachekeeper_core::pathcodec::list")]
    pub dockerfiles: Vec<PathBuf>,
    pub findings: Vec<Finding>,
}

impl DoctorView {
    #[must_use]
    pub fn new(mut dockerfiles: Vec<PathBuf>, mut findings: Vec<Finding>) -> DoctorView {
        dockerfiles.sort();
        findings.sort_by(|a, b| {
            (&a.project, &a.file, a.line, &a.id).cmp(&(&b.project, &b.file, b.line, &b.id))
        });
        DoctorView {
            version: SCHEMA_VERSION,
            dockerfiles,
            findings,
        }
    }

    /// 5 when an error-severity finding exists, 1 when a warning does, else 0.
    #[must_use]
    pub fn exit(&self) -> Exit {
        match self.findings.iter().map(|f| f.severity).max() {
            Some(Severity::Error) => Exit::DoctorError,
            Some(Severity::Warning) => Exit::Failure,
            _ => Exit::Ok,
        }
    }
}
