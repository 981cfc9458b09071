//! What a run did, line by line, for the journal (`-v`, and the daemon's log).

use cachekeeper_core::model::{CargoPlan, Outcome, Part, Snapshot, SweepReport};

/// One log line per action of a run.
pub fn log_actions(outcome: &Outcome) {
    log_sweep(&outcome.snapshot, &outcome.plan, &outcome.sweep);
}

/// One log line per action a sweep of `plan` took (the guard's phases log this way too).
pub fn log_sweep(snapshot: &Snapshot, plan: &CargoPlan, sweep: &SweepReport) {
    for r in &sweep.results {
        let a = &plan.actions[r.action];
        let target = &snapshot.targets[a.item.target];
        let what = match a.item.part {
            Part::Unit(u) => target.units[u].name(),
            Part::Incremental(i) => target.incremental[i].name.clone(),
            Part::Orphan(o) => format!("{:016x}", target.orphans[o].key.hash),
        };
        tracing::info!(
            target_dir = %target.path.display(),
            item = %what,
            rule = a.rule.name(),
            status = ?r.status,
            bytes = r.reclaimed_bytes,
            "{}",
            a.reason
        );
    }
}
