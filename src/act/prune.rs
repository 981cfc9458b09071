//! Pruning the BuildKit cache as planned: record by record with the `id` filter, which removes
//! exactly that record on every API version, descendants before what they sit on.
//!
//! Invariants:
//! - Only planned records are pruned; one the engine does not delete (a build took it since the
//!   plan) is reported as in use, not retried.
//! - A dry run asks the engine nothing: it reports the records' sizes.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::docker::Engine;
use crate::model::{
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
    for (i, action) in plan.actions.iter().enumerate() {
        let record = &cache.records[action.item];
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
