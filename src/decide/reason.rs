//! The reasons plans give, worded once for both caches.

use std::time::Duration;

use crate::units::age;

/// A budget took it: nothing was used longer ago.
#[must_use]
pub fn least_recently_used(idle: Duration) -> String {
    format!("least recently used (last used {} ago)", age(idle))
}

/// Unused for longer than `limit`, the config's `key`.
#[must_use]
pub fn unused_for(idle: Duration, key: &str, limit: Duration) -> String {
    format!("not used for {} ({key} {})", age(idle), age(limit))
}

/// It goes because `root` goes, which depends on it (a unit's dependents) or sits on it.
#[must_use]
pub fn goes_with(relation: &str, root: &str, reason: &str) -> String {
    format!("{relation} {root}, which goes ({reason})")
}
