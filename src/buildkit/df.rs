//! The engine's answer to `GET /system/df`, read the same way from every API version.
//!
//! - API ≤ 1.51: `{"BuildCache": [record, ...]}` (records have `Parent` before 1.42,
//!   `Parents` from 1.42).
//! - API 1.52 (Docker 29): also `{"BuildCacheUsage": {"ActiveBuildCacheRecords",
//!   "TotalBuildCacheRecords", "Reclaimable", "TotalSize", "Items"}}`, with `Items` only
//!   when asked with `verbose=1`.
//! - API 1.53: only `BuildCacheUsage`.
//!
//! bollard models one of these shapes per release (its 0.18 the array, its 0.21 only the
//! new object), so this module reads the JSON itself: the records come from `Items` when
//! present, else from the array.

use std::time::SystemTime;

use serde::Deserialize;

use super::Record;

#[derive(Deserialize, Default)]
struct DiskUsage {
    #[serde(rename = "BuildCache", default)]
    build_cache: Option<Vec<RawRecord>>,
    #[serde(rename = "BuildCacheUsage", default)]
    build_cache_usage: Option<Usage>,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(rename = "Items", default)]
    items: Option<Vec<RawRecord>>,
}

#[derive(Deserialize)]
struct RawRecord {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Parent", default)]
    parent: Option<String>,
    #[serde(rename = "Parents", default)]
    parents: Option<Vec<String>>,
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Description", default)]
    description: String,
    #[serde(rename = "InUse", default)]
    in_use: bool,
    #[serde(rename = "Shared", default)]
    shared: bool,
    #[serde(rename = "Size", default)]
    size: i64,
    #[serde(rename = "CreatedAt", default)]
    created_at: Option<String>,
    #[serde(rename = "LastUsedAt", default)]
    last_used_at: Option<String>,
    #[serde(rename = "UsageCount", default)]
    usage_count: i64,
}

/// Parses the records out of a `/system/df` body of any API version.
pub fn parse(body: &[u8]) -> Result<Vec<Record>, String> {
    let usage: DiskUsage =
        serde_json::from_slice(body).map_err(|e| format!("unexpected /system/df answer: {e}"))?;
    let raw = usage
        .build_cache_usage
        .and_then(|u| u.items)
        .or(usage.build_cache)
        .unwrap_or_default();
    Ok(raw.into_iter().map(Record::from).collect())
}

impl From<RawRecord> for Record {
    fn from(r: RawRecord) -> Record {
        let mut parents = r.parents.unwrap_or_default();
        if let Some(p) = r.parent.filter(|p| !p.is_empty())
            && !parents.contains(&p)
        {
            parents.push(p);
        }
        Record {
            id: r.id,
            parents,
            kind: r.kind,
            description: r.description,
            in_use: r.in_use,
            shared: r.shared,
            // Sizes can read 0 (or -1) until BuildKit has computed them.
            size: u64::try_from(r.size).unwrap_or(0),
            created_at: r.created_at.as_deref().and_then(parse_time),
            last_used_at: r.last_used_at.as_deref().and_then(parse_time),
            usage_count: u64::try_from(r.usage_count).unwrap_or(0),
        }
    }
}

/// Parses an RFC 3339 timestamp as the engine writes it (`2026-11-24T06:53:01.123456789Z`,
/// or with an offset). Go's zero time (`0001-01-01T00:00:00Z`) means "never".
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let (date, rest) = s.split_once('T')?;
    let mut d = date.split('-');
    let (y, mo, da): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    if y <= 1 {
        return None;
    }
    let (clock, offset) = split_offset(rest)?;
    let mut c = clock.split(':');
    let (h, mi): (i64, i64) = (c.next()?.parse().ok()?, c.next()?.parse().ok()?);
    let sec_text = c.next()?;
    let (whole, frac) = sec_text.split_once('.').unwrap_or((sec_text, ""));
    let sec: i64 = whole.parse().ok()?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().take(9).collect();
        format!("{digits:0<9}").parse().ok()?
    };
    let days = days_from_civil(y, mo, da);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos))
}

/// Splits `hh:mm:ss[.frac](Z|±hh:mm)` into the clock and the offset in seconds.
fn split_offset(rest: &str) -> Option<(&str, i64)> {
    if let Some(clock) = rest.strip_suffix('Z') {
        return Some((clock, 0));
    }
    let i = rest.rfind(['+', '-'])?;
    let (clock, off) = rest.split_at(i);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let (oh, om) = off[1..].split_once(':')?;
    Some((
        clock,
        sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
    ))
}

/// Formats a time as RFC 3339 in UTC, to the second (`2026-11-24T06:53:01Z`).
#[must_use]
pub fn format_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The date of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Shape of engine 20.10 (API 1.41), as seen on this machine.
    const V141: &str = r#"{"LayersSize":0,"Images":[],"Containers":[],"Volumes":[],"BuildCache":[
      {"ID":"k2t6rwbf","Parent":"","Type":"regular","Description":"mount / from exec /bin/sh -c true","InUse":false,"Shared":false,"Size":4096,"CreatedAt":"2026-11-24T06:00:00.5Z","LastUsedAt":"2026-11-24T06:10:00Z","UsageCount":2},
      {"ID":"child1","Parent":"k2t6rwbf","Type":"exec.cachemount","Description":"cached mount /cache","InUse":true,"Shared":false,"Size":-1,"CreatedAt":"2026-11-24T06:00:00Z","LastUsedAt":null,"UsageCount":0}]}"#;

    /// Shape of Docker 29 (API 1.52/1.53) with verbose=1.
    const V153: &str = r#"{"BuildCacheUsage":{"ActiveBuildCacheRecords":1,"TotalBuildCacheRecords":2,"Reclaimable":10,"TotalSize":20,"Items":[
      {"ID":"a","Parents":["p1","p2"],"Type":"source.local","Description":"local source for context","InUse":false,"Shared":true,"Size":10,"CreatedAt":"2026-11-24T08:00:00+02:00","LastUsedAt":"2026-11-24T06:10:00.000000001Z","UsageCount":5}]}}"#;

    #[test]
    fn legacy_array() {
        let r = parse(V141.as_bytes()).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].kind, "regular");
        assert_eq!(r[0].size, 4096);
        assert!(r[0].parents.is_empty());
        assert_eq!(r[1].parents, vec!["k2t6rwbf"]);
        assert_eq!(r[1].size, 0, "an uncomputed size is 0, never negative");
        assert!(r[1].in_use && r[1].last_used_at.is_none());
    }

    #[test]
    fn new_usage_object() {
        let r = parse(V153.as_bytes()).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].parents, vec!["p1", "p2"]);
        assert!(r[0].shared);
        // 08:00 at +02:00 is 06:00 UTC.
        assert_eq!(r[0].created_at, parse_time("2026-11-24T06:00:00Z"));
        assert_eq!(r[0].usage_count, 5);
    }

    #[test]
    fn no_build_cache_at_all() {
        assert!(parse(br#"{"Images":[]}"#).unwrap().is_empty());
        assert!(parse(b"not json").is_err());
    }

    #[test]
    fn timestamps() {
        let t = parse_time("2026-11-24T05:50:16.067902Z").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap(),
            Duration::new(1_795_499_416, 67_902_000)
        );
        assert_eq!(
            parse_time("1970-01-01T00:00:00Z"),
            Some(SystemTime::UNIX_EPOCH)
        );
        assert_eq!(parse_time("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_time("garbage"), None);
        for text in [
            "2026-11-24T05:50:16Z",
            "2000-02-29T23:59:59Z",
            "1970-01-01T00:00:00Z",
        ] {
            assert_eq!(format_time(parse_time(text).unwrap()), text);
        }
    }
}
