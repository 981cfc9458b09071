//! What a run did, line by line, for the journal (`-v`, and the daemon's log).

use crate::model::{Outcome, Part};

/// One log line per action.
pub fn log_actions(outcome: &Outcome) {
    for r in &outcome.sweep.results {
        let a = &outcome.plan.actions[r.action];
        let target = &outcome.snapshot.targets[a.item.target];
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
