//! The BuildKit cache of a Docker engine, as measured: its records and what the engine said of
//! itself. Plain data: the engine's connection is never kept here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::Filesystem;
use crate::config::{Host, Origin};

/// One build cache record, as the engine describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub parents: Vec<String>,
    /// `regular`, `exec.cachemount`, `source.local`, `source.git.checkout`, `frontend`,
    /// `internal`.
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub in_use: bool,
    /// Held by an image: pruning it frees nothing.
    pub shared: bool,
    pub size: u64,
    #[serde(skip)]
    pub created_at: Option<SystemTime>,
    #[serde(skip)]
    pub last_used_at: Option<SystemTime>,
    pub usage_count: u64,
}

impl Record {
    /// Whether pruning it can free space: neither in use nor shared.
    #[must_use]
    pub fn reclaimable(&self) -> bool {
        !self.in_use && !self.shared
    }

    /// When it was last used (or created, if never used).
    #[must_use]
    pub fn last_use(&self) -> Option<SystemTime> {
        self.last_used_at.or(self.created_at)
    }
}

/// The engine, as far as one run could reach it. Plain data: the connection it was measured
/// over is handed out beside it (see `measure`), never kept inside.
pub enum BuildkitSide {
    /// `[buildkit] enabled = false`, or not asked for (`--cargo-only`, paths given).
    Off,
    Unavailable {
        error: EngineError,
        /// The default socket is simply absent: no Docker on this machine. Said once, quietly.
        quiet: bool,
    },
    Ready(Box<BuildkitCache>),
}

/// Who answered: what the engine said of itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineInfo {
    pub host: Host,
    /// The docker context the host came from.
    pub context: Option<String>,
    /// The negotiated API version, `1.41`.
    pub api_version: String,
    pub server_version: String,
    /// Docker's root dir (`/var/lib/docker`), where the build cache lives.
    pub root_dir: Option<PathBuf>,
}

/// A reachable engine's build cache, as measured.
pub struct BuildkitCache {
    pub engine: EngineInfo,
    pub records: Vec<Record>,
    /// The filesystem holding Docker's root dir, when it can be measured from here.
    pub filesystem: Option<Filesystem>,
}

impl BuildkitCache {
    /// Bytes per record type: (count, bytes).
    #[must_use]
    pub fn by_type(&self) -> BTreeMap<String, (u64, u64)> {
        let mut m: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for r in &self.records {
            let e = m.entry(r.kind.clone()).or_default();
            e.0 += 1;
            e.1 = e.1.saturating_add(r.size);
        }
        m
    }

    #[must_use]
    pub fn root_dir(&self) -> Option<&PathBuf> {
        self.engine.root_dir.as_ref()
    }
}

impl EngineError {
    /// Whether this only means "no Docker on this machine": nobody asked for an engine, and
    /// the conventional socket does not exist. That is said once, quietly, and is no failure.
    #[must_use]
    pub fn means_no_docker_here(&self, origin: Origin) -> bool {
        origin == Origin::Default && matches!(self, EngineError::Absent { .. })
    }
}

/// Why the engine could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EngineError {
    #[error("no Docker engine at {host}: {cause}")]
    Absent { host: String, cause: String },
    #[error("permission denied on {host} (add the user to the docker group, or run as root)")]
    PermissionDenied { host: String },
    #[error("the Docker engine at {host} did not answer within {secs}s")]
    Timeout { host: String, secs: u64 },
    #[error("{}", api_error(host, *status, message, request))]
    Api {
        host: String,
        status: u16,
        message: String,
        /// What was asked (`GET /version`), when known.
        #[serde(default)]
        request: String,
    },
    #[error("cannot talk to the Docker engine at {host}: {cause}")]
    Other { host: String, cause: String },
}

/// An engine's refusal in a sentence. An empty answer is no message: it says where we asked
/// and what to check, since whatever answers there is likely no Docker engine (a proxy, a
/// registry, another service on the port) or one that does not serve that path.
fn api_error(host: &str, status: u16, message: &str, request: &str) -> String {
    let asked = if request.is_empty() {
        String::new()
    } else {
        format!(" to {request}")
    };
    if message.trim().is_empty() {
        let what = if status == 404 { " (not found)" } else { "" };
        format!(
            "{host} answered {status}{what} with an empty body{asked}: check that the address \
             is a Docker engine's API (`docker -H {host} version` answers) and not a proxy or \
             another service on that port"
        )
    } else {
        format!("the Docker engine at {host} answered {status}{asked}: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_refusal_says_where_and_what_to_check() {
        let e = EngineError::Api {
            host: "tcp://10.0.0.5:2375".into(),
            status: 404,
            message: String::new(),
            request: "GET /version".into(),
        };
        assert_eq!(
            e.to_string(),
            "tcp://10.0.0.5:2375 answered 404 (not found) with an empty body to GET /version: \
             check that the address is a Docker engine's API (`docker -H tcp://10.0.0.5:2375 \
             version` answers) and not a proxy or another service on that port"
        );
    }

    #[test]
    fn only_an_absent_default_engine_is_quiet() {
        let absent = EngineError::Absent {
            host: "unix:///var/run/docker.sock".into(),
            cause: "no such socket".into(),
        };
        assert!(absent.means_no_docker_here(Origin::Default));
        // Asked for by config or DOCKER_HOST: its absence is a failure to report.
        assert!(!absent.means_no_docker_here(Origin::Config));
        assert!(!absent.means_no_docker_here(Origin::Env));
        let denied = EngineError::PermissionDenied {
            host: "unix:///var/run/docker.sock".into(),
        };
        assert!(!denied.means_no_docker_here(Origin::Default));
    }
}
