//! When the daemon runs the policy: on its cron schedule, and on disk pressure. Pure: the
//! caller feeds times and free-space samples in.
//!
//! Disk pressure has hysteresis: after a pressure run the trigger disarms, and re-arms only
//! when free space climbs back above the watermark plus the hysteresis margin (or, if it never
//! does because nothing more could be freed, after [`Pressure::RETRY`] minimum intervals). No
//! run of any kind starts sooner than `min-interval` after the previous one.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Local, Utc};

/// A cron schedule. The standard 5-field crontab form (`minute hour day month weekday`) and
/// the cron crate's 6/7-field form with seconds (and years) are accepted.
#[derive(Clone, Debug)]
pub struct Schedule {
    text: String,
    inner: cron::Schedule,
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let q = crate::units::quoted(text);
        let fields = text.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {text}"),
            6 | 7 => text.to_string(),
            _ => {
                return Err(format!(
                    "invalid schedule {q}: expected a cron expression of 5 fields \
                     (minute hour day-of-month month day-of-week, like \"0 3 * * *\") or 6/7 with seconds"
                ));
            }
        };
        let inner =
            cron::Schedule::from_str(&full).map_err(|e| format!("invalid schedule {q}: {e}"))?;
        Ok(Schedule {
            text: text.to_string(),
            inner,
        })
    }

    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The first time after `t`, in local time (crontab's convention).
    #[must_use]
    pub fn next_after(&self, t: SystemTime) -> Option<SystemTime> {
        let local: DateTime<Local> = DateTime::<Utc>::from(t).with_timezone(&Local);
        self.inner.after(&local).next().map(SystemTime::from)
    }
}

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
    fn five_and_six_field_schedules() {
        let s = Schedule::parse("*/15 * * * *").unwrap();
        let next = s.next_after(t(0)).unwrap();
        let gap = next.duration_since(t(0)).unwrap();
        assert!(gap <= 15 * MIN && gap > Duration::ZERO, "{gap:?}");
        let s = Schedule::parse("30 */5 * * * *").unwrap();
        assert!(s.next_after(t(0)).unwrap().duration_since(t(0)).unwrap() <= 5 * MIN);
        assert!(Schedule::parse("nightly").unwrap_err().contains("5 fields"));
        assert!(
            Schedule::parse("61 * * * *")
                .unwrap_err()
                .contains("invalid schedule")
        );
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
