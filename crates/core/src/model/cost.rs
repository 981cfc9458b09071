//! What data costs to get back: a unit's last compile time from cargo's own timestamps, an
//! estimate where they are missing, and how likely data is to be used again. Pure functions of
//! the snapshot; `decide` weighs them.
//!
//! cargo writes `invoked.timestamp` just before it runs the compiler (in the unit's fingerprint
//! dir; for a build script's run, in the run dir) and the fingerprint hash file when the unit
//! is done (after the whole `.rlib`, not the early `.rmeta` of a pipelined build; after the
//! script's `root-output` for a run): the gap is what the unit's last build took, and
//! [`super::rebuild`] turns it into the unit's work.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::rebuild::SECONDS_PER_GIB;
use super::{IncrementalDir, Unit};

/// Losing incremental data costs this share of the crate's compile, once, on its next
/// recompile: that compile starts from scratch instead of from the session (an edit that
/// rebuilds incrementally typically takes a third of a full compile or less).
pub(crate) const INCREMENTAL_SHARE: f64 = 0.7;

/// The chance of reuse falls with idle time as a power law, the way re-reference does in
/// most caches: `(1 + idle / REUSE_SCALE) ^ -1/2`. Data idle a day counts 0.71 of data used
/// now, three days half, a week 0.35, a month 0.18: the build just run outweighs one of the
/// same cost from yesterday, and month-old data goes first unless it is costly to rebuild.
pub(crate) const REUSE_SCALE: Duration = Duration::from_secs(86_400);

/// What one unit costs to rebuild.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BuildCost {
    pub seconds: f64,
    /// From cargo's timestamps; `false` when estimated from size.
    pub measured: bool,
}

impl Unit {
    /// What its compile costs: the work [`super::rebuild::time_units`] worked out; before that
    /// (a unit made by hand), its own trusted wall time, else an estimate from its size.
    /// Never zero where its times cannot be trusted.
    #[must_use]
    pub fn build_cost(&self) -> BuildCost {
        if let Some(t) = self.timing {
            return BuildCost {
                seconds: t.seconds,
                measured: t.measured,
            };
        }
        if let Some((start, end)) = self.trusted_wall() {
            return BuildCost {
                seconds: end.duration_since(start).unwrap_or_default().as_secs_f64(),
                measured: true,
            };
        }
        BuildCost {
            #[allow(clippy::cast_precision_loss)]
            seconds: (self.output_bytes() as f64 / f64::from(1u32 << 30) * SECONDS_PER_GIB)
                .max(0.05),
            measured: false,
        }
    }
}

impl IncrementalDir {
    /// What losing it costs: [`INCREMENTAL_SHARE`] of its owners' compile time.
    #[must_use]
    pub fn rebuild_seconds(&self, units: &[Unit]) -> f64 {
        self.owners
            .iter()
            .map(|&o| units[o].build_cost().seconds)
            .sum::<f64>()
            * INCREMENTAL_SHARE
    }
}

/// The chance that data last used `idle` ago is used again, relative to data used now.
#[must_use]
pub(crate) fn reuse_weight(idle: Duration) -> f64 {
    (1.0 + idle.as_secs_f64() / REUSE_SCALE.as_secs_f64()).powf(-0.5)
}

/// How much more likely data used often is to be used again: `1 + ln(1 + uses per week)`, the
/// weeks counted from when the daemon first saw it (at least one). 1 where nothing is known.
#[must_use]
pub(crate) fn frequency_weight(uses: u32, watched_for: Duration) -> f64 {
    let weeks = (watched_for.as_secs_f64() / (7.0 * 86_400.0)).max(1.0);
    1.0 + (1.0 + f64::from(uses) / weeks).ln()
}

/// `reuse_weight` of data last used at `used`, seen at `now`.
#[must_use]
pub(crate) fn reuse_weight_at(used: SystemTime, now: SystemTime) -> f64 {
    reuse_weight(now.duration_since(used).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuse_halves_after_three_days_and_keeps_falling() {
        assert!((reuse_weight(Duration::ZERO) - 1.0).abs() < 1e-9);
        assert!((reuse_weight(REUSE_SCALE * 3) - 0.5).abs() < 1e-9);
        let day = Duration::from_secs(86_400);
        assert!(reuse_weight(day) > 0.7 && reuse_weight(day) < 0.71);
        assert!(reuse_weight(day * 7) > 0.35 && reuse_weight(day * 7) < 0.36);
        assert!(reuse_weight(day * 30) < 0.18);
    }

    #[test]
    fn frequent_use_counts_by_the_week() {
        let week = Duration::from_secs(7 * 86_400);
        assert!((frequency_weight(0, week) - 1.0).abs() < 1e-9);
        // Ten uses in a week, or twenty in two: the same rate.
        assert!((frequency_weight(10, week) - frequency_weight(20, week * 2)).abs() < 1e-9);
        assert!(frequency_weight(10, week) > 3.0);
        // A day's watching counts as a week: no rate from a few minutes' data.
        assert!((frequency_weight(7, week / 7) - frequency_weight(7, week)).abs() < 1e-9);
    }
}
