//! Units people and files speak in: bytes, durations, ages and times, parsed and formatted
//! in one place so every report says them the same way.
//!
//! Invariant: this module imports nothing of cachekeeper's; everything else may use it.

use std::time::{Duration, SystemTime};

/// Bytes in binary units (`1.50 GiB`), the way every size is shown to people.
#[must_use]
pub fn human_bytes(bytes: u64) -> String {
    humansize::format_size(bytes, humansize::BINARY)
}

pub(crate) const DURATION_EXPECTED: &str =
    "a duration like \"30d\", \"36h\", \"90m\", \"2w\" or \"1d12h\" (units: s, m, h, d, w)";

/// A count and its noun, singular for one: `1 run`, `2 runs`, `0 runs`.
#[must_use]
pub fn count(n: impl TryInto<u64>, one: &str, many: &str) -> String {
    let n = n.try_into().unwrap_or(u64::MAX);
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Compile time for people: `0.4 s`, `41 s`, `3 min`, `1.2 h`.
#[must_use]
pub fn human_seconds(seconds: f64) -> String {
    if seconds < 10.0 {
        format!("{seconds:.1} s")
    } else if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// Parses a duration made of one or more `<number><unit>` parts.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let q = quoted(text);
    let t = text.trim();
    let err = || format!("invalid duration {q}: expected {DURATION_EXPECTED}");
    if t.is_empty() {
        return Err(err());
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(err());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let secs: u64 = match &rest[..unit_len] {
            "s" | "sec" | "secs" => 1,
            "m" | "min" | "mins" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 7 * 86_400,
            "" => {
                return Err(format!(
                    "invalid duration {q}: a number needs a unit; expected {DURATION_EXPECTED}"
                ));
            }
            _ => return Err(err()),
        };
        total = n
            .checked_mul(secs)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| format!("invalid duration {q}: too large"))?;
        rest = rest[unit_len..].trim_start();
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration the way the config writes it (`"30d"`, `"1d12h"`, `"90s"`).
#[must_use]
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    out
}

/// Formats an age the way people read it: `42d`, `5h`, `12m`, `30s`.
#[must_use]
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 2 * 86_400 {
        format!("{}d", s / 86_400)
    } else if s >= 2 * 3600 {
        format!("{}h", s / 3600)
    } else if s >= 120 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Text safe to show on a terminal: control characters (C0 but newline, DEL, C1) and the
/// Unicode controls that reorder or hide text (bidi overrides and isolates, zero-width
/// joiners aside) are written as `\u{..}`, so no escape sequence from a file we read reaches
/// the terminal raw.
#[must_use]
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A value as error messages quote it: debug-quoted, and cut after 60 characters (a bad value
/// can be megabytes long).
#[must_use]
pub fn quoted(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head:?}... ({} characters)", text.chars().count())
    }
}

/// Parses an RFC 3339 timestamp as the engine writes it (`2026-11-24T06:53:01.123456789Z`,
/// or with an offset). Go's zero time (`0001-01-01T00:00:00Z`) and anything before 1970
/// mean "never".
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    let since = t.signed_duration_since(chrono::DateTime::UNIX_EPOCH);
    SystemTime::UNIX_EPOCH.checked_add(since.to_std().ok()?)
}

/// Formats a time as RFC 3339 in UTC, to the second (`2026-11-24T06:53:01Z`); a time before
/// 1970 as 1970.
#[must_use]
pub fn rfc3339(t: SystemTime) -> String {
    let t = t.max(SystemTime::UNIX_EPOCH);
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Serde for a time written as RFC 3339 (`#[serde(with = "cachekeeper_core::units::time")]`):
/// a view holds a time as a time, and it becomes text only when it is written out.
pub mod time {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*t))
    }

    /// # Errors
    /// When the text is not an RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_rfc3339(&text)
            .ok_or_else(|| D::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }

    /// The same for an `Option` (`null` for `None`).
    pub mod option {
        use std::time::SystemTime;

        use serde::{Deserialize, Deserializer, Serializer, de::Error};

        /// # Errors
        /// Those of the serializer.
        pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&super::super::rfc3339(*t)),
                None => s.serialize_none(),
            }
        }

        /// # Errors
        /// When the text is not an RFC 3339 time.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<SystemTime>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|text| {
                    super::super::parse_rfc3339(&text)
                        .ok_or_else(|| D::Error::custom(format!("not an RFC 3339 time: {text:?}")))
                })
                .transpose()
        }
    }
}

/// A time as people read it: local, with its offset (the schedule is local time too). Views
/// carry RFC 3339 UTC for scripts; anything else is shown as it is.
#[must_use]
pub fn local(utc: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(utc).map_or_else(
        |_| utc.to_string(),
        |t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string()
        },
    )
}

/// [`local`] of a time.
#[must_use]
pub fn local_time(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(t)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(count(1u32, "run", "runs"), "1 run");
        assert_eq!(count(2u32, "pass", "passes"), "2 passes");
        assert_eq!(count(0u32, "target dir", "target dirs"), "0 target dirs");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("36h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(
            parse_duration("1d12h"),
            Ok(Duration::from_secs(86_400 + 12 * 3600))
        );
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("90 m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("14").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("14 fortnights").is_err());
        assert!(parse_duration("").is_err());
        assert!(
            parse_duration("99999999999999999w")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn durations_round_trip_through_format() {
        for text in ["30d", "1d12h", "1m30s", "1h1m1s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn timestamps() {
        let t = parse_rfc3339("2026-11-24T05:50:16.067902Z").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap(),
            Duration::new(1_795_499_416, 67_902_000)
        );
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:00Z"),
            Some(SystemTime::UNIX_EPOCH)
        );
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(parse_rfc3339("2026-02-30T00:00:00Z"), None, "no such day");
        assert_eq!(
            parse_rfc3339("2026-11-24T07:50:16+02:00"),
            parse_rfc3339("2026-11-24T05:50:16Z")
        );
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
        for text in [
            "2026-11-24T05:50:16Z",
            "2000-02-29T23:59:59Z",
            "1970-01-01T00:00:00Z",
        ] {
            assert_eq!(rfc3339(parse_rfc3339(text).unwrap()), text);
        }
    }
}
