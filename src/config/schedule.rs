//! When the daemon runs the policy on its own: a cron schedule, in local time.

use std::str::FromStr;
use std::time::SystemTime;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
