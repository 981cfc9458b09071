//! The disk-pressure trigger. Pure: the caller feeds times and free-space samples in.
//!
//! Disk pressure has hysteresis: after a pressure run the trigger disarms, and re-arms only
//! when free space climbs back above the watermark plus the hysteresis margin (or, if it never
//! does because nothing more could be freed, after [`Pressure::RETRY`] minimum intervals). No
//! pressure run starts sooner than `min-interval` after the previous run.

use std::time::{Duration, SystemTime};

/// The disk-pressure trigger of one filesystem.
#[derive(Clone, Debug)]
pub struct Pressure {
    armed: bool,
    disarmed_at: Option<SystemTime>,
}

impl Default for Pressure {
    fn default() -> Self {
        Pressure {
            armed: true,
            disarmed_at: None,
        }
    }
}

impl Pressure {
    /// A disarmed trigger re-arms by itself after this many minimum intervals, so a disk that
    /// stays full after a run (nothing more could go) is retried now and then, not never.
    pub const RETRY: u32 = 6;

    /// Feeds one sample; returns whether to run now. `last_run` is when any run last started.
    pub fn sample(
        &mut self,
        free: u64,
        watermark: u64,
        hysteresis: u64,
        now: SystemTime,
        last_run: Option<SystemTime>,
        min_interval: Duration,
    ) -> bool {
        if free >= watermark.saturating_add(hysteresis) {
            self.armed = true;
            self.disarmed_at = None;
        }
        if !self.armed
            && self
                .disarmed_at
                .is_some_and(|t| since(now, t) >= min_interval * Self::RETRY)
        {
            self.armed = true;
        }
        let quiet_long_enough = last_run.is_none_or(|t| since(now, t) >= min_interval);
        if free < watermark && self.armed && quiet_long_enough {
            self.armed = false;
            self.disarmed_at = Some(now);
            return true;
        }
        false
    }

    #[must_use]
    pub fn armed(&self) -> bool {
        self.armed
    }
}

fn since(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn pressure_fires_once_then_waits_for_recovery() {
        let mut p = Pressure::default();
        let (wm, hy) = (1000, 100);
        assert!(!p.sample(5000, wm, hy, t(0), None, MIN));
        assert!(
            p.sample(900, wm, hy, t(10), None, MIN),
            "dropped under the watermark"
        );
        // Still under, or barely above: no thrash.
        // (all within RETRY minimum intervals of the run)
        assert!(!p.sample(900, wm, hy, t(2 * 60), Some(t(10)), MIN));
        assert!(!p.sample(1050, wm, hy, t(3 * 60), Some(t(10)), MIN));
        assert!(!p.sample(950, wm, hy, t(4 * 60), Some(t(10)), MIN));
        // Recovered past the hysteresis, then dropped again: fires again.
        assert!(!p.sample(1200, wm, hy, t(5 * 60), Some(t(10)), MIN));
        assert!(p.sample(950, wm, hy, t(5 * 60 + 30), Some(t(10)), MIN));
    }

    #[test]
    fn pressure_respects_the_minimum_interval_and_retries_a_stuck_disk() {
        let mut p = Pressure::default();
        // A scheduled run just happened: pressure waits for the minimum interval.
        assert!(!p.sample(10, 1000, 100, t(30), Some(t(0)), MIN));
        assert!(p.sample(10, 1000, 100, t(61), Some(t(0)), MIN));
        // Never recovers: retried after RETRY minimum intervals, not before.
        assert!(!p.sample(10, 1000, 100, t(61 + 5 * 60), Some(t(61)), MIN));
        assert!(p.sample(10, 1000, 100, t(61 + 6 * 60), Some(t(61)), MIN));
    }
}
