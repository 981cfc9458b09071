//! The reasons plans give, worded once for both caches.

use std::time::Duration;

use crate::units::{age, human_seconds};

/// A budget took it: nothing was used longer ago.
#[must_use]
pub(crate) fn least_recently_used(idle: Duration) -> String {
    format!("least recently used (last used {} ago)", age(idle))
}

/// Unused for longer than `limit`, the config's `key`.
#[must_use]
pub(crate) fn unused_for(idle: Duration, key: &str, limit: Duration) -> String {
    format!("not used for {} ({key} {})", age(idle), age(limit))
}

/// It goes because `root` goes, which depends on it (a unit's dependents) or sits on it.
#[must_use]
pub(crate) fn goes_with(relation: &str, root: &str, reason: &str) -> String {
    format!("{relation} {root}, which goes ({reason})")
}

/// A cost budget took a unit group: what it takes to rebuild, and its last use.
#[must_use]
pub fn rebuild_cost(seconds: f64, measured: bool, dependents: usize, idle: Duration) -> String {
    let with = match dependents {
        0 => String::new(),
        1 => " with its dependent".to_string(),
        n => format!(" with its {n} dependents"),
    };
    let how = if measured {
        ""
    } else {
        ", estimated from size"
    };
    format!(
        "cheapest to lose: ~{} to rebuild{with}{how}, last used {} ago",
        human_seconds(seconds),
        age(idle)
    )
}

/// A cost budget took incremental data alone.
#[must_use]
pub(crate) fn incremental_cost(seconds: f64, share: f64, idle: Duration) -> String {
    format!(
        "cheapest to lose: the crate's next recompile starts from scratch, ~{} more ({:.0} % of its compile), last written {} ago",
        human_seconds(seconds),
        share * 100.0,
        age(idle)
    )
}
