//! The BuildKit cache of the local Docker engine: measure it, plan within a budget, prune.
//!
//! BuildKit's own garbage collection runs only after a build, never on an idle host, and its
//! default policy removes cache mounts first. cachekeeper measures the cache through the
//! engine API, plans with [`plan`] (pure), and prunes the chosen records one by one with the
//! `id` filter, which removes exactly that record on every API version, leaf records first.
//!
//! Invariants:
//! - Records in use, or shared with an image, are never pruned, nor anything they sit on.
//! - A dry run asks the engine nothing but the listing: it reports the records' sizes.
//! - An engine that is absent, refuses us, hangs or errs is reported once with its cause; it
//!   never stops the cargo side.

pub mod df;
pub mod engine;
pub mod plan;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::disk::Filesystem;
use crate::sweep::{Mode, Status};
pub use engine::{Engine, EngineError, Host, Origin};

/// One build cache record, as the engine describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
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
/// over is handed out beside it (see [`measure`]), never kept inside.
pub enum Side {
    /// `[buildkit] enabled = false`, or not asked for (`--cargo-only`, paths given).
    Off,
    Unavailable {
        error: EngineError,
        /// The default socket is simply absent: no Docker on this machine. Said once, quietly.
        quiet: bool,
    },
    Ready(Box<Cache>),
}

/// Who answered: what the engine said of itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineInfo {
    pub host: Host,
    /// The negotiated API version, `1.41`.
    pub api_version: String,
    pub server_version: String,
    /// Docker's root dir (`/var/lib/docker`), where the build cache lives.
    pub root_dir: Option<PathBuf>,
}

/// A reachable engine's build cache, as measured.
pub struct Cache {
    pub engine: EngineInfo,
    pub records: Vec<Record>,
    /// The filesystem holding Docker's root dir, when it can be measured from here.
    pub filesystem: Option<Filesystem>,
}

/// Connects to the engine at `host` and lists its build cache. The connection comes back
/// beside the measurement, for whoever acts on it.
pub async fn measure(host: Host, origin: Origin, timeout: Duration) -> (Side, Option<Engine>) {
    let result = async {
        let engine = Engine::connect(host, timeout).await?;
        let records = engine.records().await?;
        Ok::<_, EngineError>((engine, records))
    }
    .await;
    match result {
        Ok((engine, records)) => {
            let info = engine.info();
            let filesystem = info
                .root_dir
                .as_deref()
                .filter(|_| matches!(info.host, Host::Unix(_)))
                .and_then(|d| crate::disk::measure(d).ok());
            let cache = Cache {
                engine: info,
                records,
                filesystem,
            };
            (Side::Ready(Box::new(cache)), Some(engine))
        }
        Err(error) => (
            Side::Unavailable {
                quiet: error.means_no_docker_here(origin),
                error,
            },
            None,
        ),
    }
}

/// [`measure`] for the configured host (`docker-host`, else `$DOCKER_HOST`, else the local
/// socket).
pub async fn measure_configured(
    docker_host: Option<&Host>,
    timeout: Duration,
) -> (Side, Option<Engine>) {
    match Host::resolve(docker_host) {
        Ok((host, origin)) => measure(host, origin, timeout).await,
        Err(cause) => (
            Side::Unavailable {
                error: EngineError::Other {
                    host: "$DOCKER_HOST".into(),
                    cause,
                },
                quiet: false,
            },
            None,
        ),
    }
}

/// What happened to one planned record.
#[derive(Clone, Debug, Serialize)]
pub struct RecordResult {
    /// Index into the plan's actions.
    pub action: usize,
    pub status: Status,
    /// Freed as the engine reports it (in a dry run: the record's size).
    pub reclaimed_bytes: u64,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SweepReport {
    pub results: Vec<RecordResult>,
    pub reclaimed_bytes: u64,
    pub errors: u64,
}

/// Prunes (or dry-runs) the plan's records of `cache` in order: descendants before
/// ancestors. A dry run asks the engine nothing; a real run needs `engine`.
pub async fn sweep(
    engine: Option<&Engine>,
    cache: &Cache,
    plan: &plan::Plan,
    mode: Mode,
    stop: Option<&AtomicBool>,
) -> SweepReport {
    let mut report = SweepReport::default();
    for (i, action) in plan.actions.iter().enumerate() {
        let record = &cache.records[action.record];
        let mut result = RecordResult {
            action: i,
            status: Status::WouldRemove,
            reclaimed_bytes: 0,
            error: None,
        };
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            result.status = Status::Stopped;
        } else if mode == Mode::DryRun {
            result.reclaimed_bytes = record.size;
        } else {
            let answer = match engine {
                Some(engine) => engine.prune(&record.id).await,
                None => Err(EngineError::Other {
                    host: cache.engine.host.to_string(),
                    cause: "not connected".into(),
                }),
            };
            match answer {
                Ok((deleted, bytes)) if deleted.iter().any(|d| d == &record.id) => {
                    result.status = Status::Removed;
                    result.reclaimed_bytes = bytes;
                }
                // Not deleted: a build started using it since the plan was made.
                Ok(_) => result.status = Status::SkippedBusy,
                Err(e) => {
                    result.status = Status::Partial;
                    result.error = Some(e.to_string());
                    report.errors += 1;
                }
            }
        }
        report.reclaimed_bytes = report
            .reclaimed_bytes
            .saturating_add(result.reclaimed_bytes);
        report.results.push(result);
    }
    report
}

impl Cache {
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
