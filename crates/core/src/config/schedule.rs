//! When the daemon runs the policy on its own: a schedule as crontab(5) means it, in local time.
//!
//! Parsed by `croner`, which follows POSIX/Vixie cron (the `cron` crate numbers weekdays the
//! Quartz way, 1 = Sunday, so `0 3 * * 1` ran on Sundays): the 5 fields `minute hour
//! day-of-month month day-of-week`, days of the week 0–7 (0 and 7 are Sunday), names (`mon`,
//! `jan`), ranges, lists and steps, the `@hourly` / `@daily` / `@weekly` / `@monthly` /
//! `@yearly` macros, and day-of-month OR day-of-week when both are restricted. A leading 6th
//! field of seconds (and a trailing year) are accepted too. A schedule that never runs, or
//! not within 8 years (`0 0 31 2 *`), is refused.

use std::time::SystemTime;

use chrono::{DateTime, Local, TimeZone, Utc};
use croner::parser::{CronParser, Seconds, Year};

/// A cron schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    text: String,
    inner: croner::Cron,
}

/// How far a schedule's next run may lie (`0 0 29 2 *` runs every 4 years, and is fine).
const WITHIN_YEARS: i32 = 8;

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let q = crate::units::quoted(text);
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Optional)
            .dom_and_dow(false)
            .build();
        // Vixie cron's other name for @daily; @reboot means nothing to a daemon's schedule.
        let pattern = match text.trim() {
            "@midnight" => "@daily",
            "@reboot" => {
                return Err(format!(
                    "invalid schedule {q}: the daemon never cleans at start-up; use a time (\"0 3 * * *\", @daily)"
                ));
            }
            t => t,
        };
        let inner = parser.parse(pattern).map_err(|e| {
            format!(
                "invalid schedule {q}: {e}: expected crontab's 5 fields (minute hour day-of-month month day-of-week, like \"0 3 * * *\") or @daily, @weekly, @hourly"
            )
        })?;
        // No clock is read while validating: every span of 8 years holds a leap day, so a
        // schedule runs within 8 years of any moment if it runs within 8 years of this one.
        let from = Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).single();
        let runs = from.and_then(|f| inner.find_next_occurrence(&f, false).ok());
        let soon = match (from, runs) {
            (Some(f), Some(next)) => {
                next < f.with_timezone(&Utc) + chrono::Months::new(12 * WITHIN_YEARS as u32)
            }
            _ => false,
        };
        if !soon {
            return Err(format!(
                "invalid schedule {q}: it never runs (no time matches it within {WITHIN_YEARS} years)"
            ));
        }
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
        self.inner
            .find_next_occurrence(&local, false)
            .ok()
            .map(SystemTime::from)
    }

    /// [`Schedule::next_after`] in the time zone `tz`.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn next_after_in<Tz: TimeZone>(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.inner.find_next_occurrence(t, false).ok()
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

    /// Each form against the next run crontab(5) gives, from Wednesday 2026-12-02 10:17:30
    /// UTC (Vixie cron: 0 and 7 are Sunday, names, steps, macros, and day-of-month OR
    /// day-of-week when both are restricted).
    #[test]
    fn crontab_semantics_as_cron_means_them() {
        let from = Utc.with_ymd_and_hms(2026, 12, 2, 10, 17, 30).unwrap();
        let table = [
            ("@daily", "2026-12-03 00:00"),
            ("@midnight", "2026-12-03 00:00"),
            ("@hourly", "2026-12-02 11:00"),
            ("@weekly", "2026-12-06 00:00"),
            ("@monthly", "2027-01-01 00:00"),
            ("@yearly", "2027-01-01 00:00"),
            ("@annually", "2027-01-01 00:00"),
            ("0 3 * * 0", "2026-12-06 03:00"),
            ("0 3 * * 7", "2026-12-06 03:00"),
            ("0 3 * * 1", "2026-12-07 03:00"),
            ("0 3 * * mon", "2026-12-07 03:00"),
            ("0 3 * * mon-fri", "2026-12-03 03:00"),
            ("0 3 * * 1-5", "2026-12-03 03:00"),
            ("0 3 * * sat,sun", "2026-12-05 03:00"),
            ("*/15 * * * *", "2026-12-02 10:30"),
            ("0 */6 * * *", "2026-12-02 12:00"),
            ("5-10/2 * * * *", "2026-12-02 11:05"),
            ("0 0 1,15 * 1", "2026-12-07 00:00"),
            ("0 0 15 * *", "2026-12-15 00:00"),
            ("0 0 1 jan *", "2027-01-01 00:00"),
            ("0 0 1 1-3 *", "2027-01-01 00:00"),
            ("30 4 1 * *", "2027-01-01 04:30"),
            ("0 12 * * wed", "2026-12-02 12:00"),
            ("0 0 29 2 *", "2028-02-29 00:00"),
            ("0 22 * * 1-5", "2026-12-02 22:00"),
        ];
        for (expr, want) in table {
            let s = Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            let next = s
                .next_after_in(&from)
                .unwrap()
                .format("%Y-%m-%d %H:%M")
                .to_string();
            assert_eq!(next, want, "{expr}");
        }
        // The OR rule: the 1st, the 15th, or any Monday.
        let s = Schedule::parse("0 0 1,15 * 1").unwrap();
        let later = Utc.with_ymd_and_hms(2026, 12, 8, 0, 0, 0).unwrap();
        assert_eq!(
            s.next_after_in(&later)
                .unwrap()
                .format("%Y-%m-%d")
                .to_string(),
            "2026-12-14"
        );
    }

    /// Hardening issue: `0 0 31 2 *` was accepted ("next run never").
    #[test]
    fn a_schedule_that_never_runs_is_refused() {
        let e = Schedule::parse("0 0 31 2 *").unwrap_err();
        assert!(e.contains("never runs"), "{e}");
        assert!(Schedule::parse("0 0 30 2 *").is_err());
        assert!(Schedule::parse("0 0 29 2 *").is_ok());
        assert!(Schedule::parse("0 3 * * 8").is_err());
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
        assert!(Schedule::parse("").is_err());
        assert!(
            Schedule::parse("61 * * * *")
                .unwrap_err()
                .contains("invalid schedule")
        );
    }
}
