//! Pruning the BuildKit cache as planned: record by record with the `id` filter, which removes
//! exactly that record on every API version, descendants before what they sit on.
//!
//! Invariants:
//! - Only planned records are pruned; one the engine does not delete (a build took it since the
//!   plan) is reported as in use, not retried.
//! - A dry run asks the engine nothing: it reports the records' sizes.
//! - A run has one deadline for the engine, however many records it prunes (as long as one
//!   record may take, twelve times the `timeout`): an engine that slows down costs a run that
//!   long, not that long per record. What is left when it passes is reported, never hidden.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::docker::Engine;
use cachekeeper_core::model::{
    BuildkitCache, BuildkitPlan, EngineError, Mode, PruneReport, RecordResult, Status,
};

/// Prunes (or dry-runs) the plan's records of `cache` in order: descendants before
/// ancestors. A dry run asks the engine nothing; a real run needs `engine`.
pub async fn sweep(
    engine: Option<&Engine>,
    cache: &BuildkitCache,
    plan: &BuildkitPlan,
    mode: Mode,
    stop: Option<&AtomicBool>,
) -> PruneReport {
    let mut report = PruneReport::default();
    let deadline = engine.map(|e| {
        (
            tokio::time::Instant::now() + e.run_deadline(),
            e.run_deadline(),
        )
    });
    let mut left = 0usize;
    for (i, action) in plan.actions.iter().enumerate() {
        let record = &cache.records[action.item];
        let mut result = RecordResult {
            action: i,
            status: Status::WouldRemove,
            reclaimed_bytes: 0,
            error: None,
        };
        let passed = deadline.is_some_and(|(at, _)| tokio::time::Instant::now() >= at);
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            result.status = Status::Stopped;
        } else if mode == Mode::Execute && passed {
            result.status = Status::Stopped;
            left += 1;
        } else if mode == Mode::DryRun {
            result.reclaimed_bytes = record.size;
        } else {
            let answer = match (engine, deadline) {
                (Some(engine), Some((at, _))) => {
                    match tokio::time::timeout_at(at, engine.prune(&record.id)).await {
                        Ok(a) => a,
                        Err(_) => Err(EngineError::Timeout {
                            host: cache.engine.host.to_string(),
                            secs: engine.run_deadline().as_secs(),
                        }),
                    }
                }
                _ => Err(EngineError::Other {
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
    if left > 0
        && let Some((_, within)) = deadline
    {
        report.deadline = Some(format!(
            "the run's time for the engine ({}) passed: {left} planned record{} left for the next run",
            cachekeeper_core::units::format_duration(within),
            if left == 1 { "" } else { "s" }
        ));
    }
    report
}
