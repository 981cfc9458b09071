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
use std::time::SystemTime;

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

/// The engine, as far as one run could reach it.
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

/// A reachable engine and its build cache.
pub struct Cache {
    pub engine: Engine,
    pub records: Vec<Record>,
    /// The filesystem holding Docker's root dir, when it can be measured from here.
    pub filesystem: Option<Filesystem>,
    runtime: tokio::runtime::Runtime,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread tokio runtime builds")
}

impl Side {
    /// Connects to the engine at `host` and lists its build cache.
    #[must_use]
    pub fn survey(host: Host, origin: Origin, timeout: std::time::Duration) -> Side {
        let rt = runtime();
        let result = rt.block_on(async {
            let engine = Engine::connect(host, timeout).await?;
            let records = engine.records().await?;
            Ok::<_, EngineError>((engine, records))
        });
        match result {
            Ok((engine, records)) => {
                let filesystem = engine
                    .root_dir
                    .as_deref()
                    .filter(|_| matches!(engine.host, Host::Unix(_)))
                    .and_then(|d| crate::disk::measure(d).ok());
                Side::Ready(Box::new(Cache {
                    engine,
                    records,
                    filesystem,
                    runtime: rt,
                }))
            }
            Err(error) => Side::Unavailable {
                quiet: error.means_no_docker_here(origin),
                error,
            },
        }
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

impl Cache {
    /// Prunes (or dry-runs) the plan's records in order: descendants before ancestors.
    pub fn sweep(&self, plan: &plan::Plan, mode: Mode, stop: Option<&AtomicBool>) -> SweepReport {
        let mut report = SweepReport::default();
        for (i, action) in plan.actions.iter().enumerate() {
            let record = &self.records[action.record];
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
                match self.runtime.block_on(self.engine.prune(&record.id)) {
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
            report.reclaimed_bytes += result.reclaimed_bytes;
            report.results.push(result);
        }
        report
    }

    /// Bytes per record type: (count, bytes).
    #[must_use]
    pub fn by_type(&self) -> BTreeMap<String, (u64, u64)> {
        let mut m: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for r in &self.records {
            let e = m.entry(r.kind.clone()).or_default();
            e.0 += 1;
            e.1 += r.size;
        }
        m
    }

    #[must_use]
    pub fn root_dir(&self) -> Option<&PathBuf> {
        self.engine.root_dir.as_ref()
    }
}
