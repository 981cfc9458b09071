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

use serde::Deserialize;

use cachekeeper_core::model::Record;

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

/// The `message` of an error answer (`{"message": "..."}`), as every API version sends it.
#[must_use]
pub fn message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    serde_json::from_slice::<Message>(body)
        .ok()
        .map(|m| m.message)
}

/// Whether an error answer says another disk usage computation is running (engines before
/// 23.0 allow one at a time).
#[must_use]
pub fn busy(body: &[u8]) -> bool {
    message(body).is_some_and(|m| m == "a disk usage operation is already running")
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
            created_at: r
                .created_at
                .as_deref()
                .and_then(cachekeeper_core::units::parse_rfc3339),
            last_used_at: r
                .last_used_at
                .as_deref()
                .and_then(cachekeeper_core::units::parse_rfc3339),
            usage_count: u64::try_from(r.usage_count).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shape of engine 20.10 (API 1.41), as seen on this machine.
    const V141: &str = r#"{"LayersSize":0,"Images":[],"Containers":[],"Volumes":[],"BuildCache":[
      {"ID":"k2t6rwbf","Parent":"","Type":"regular","Description":"mount / from exec /bin/sh -c true","InUse":false,"Shared":false,"Size":4096,"CreatedAt":"2026-11-24T06:00:00.5Z","LastUsedAt":"2026-11-24T06:10:00Z","UsageCount":2},
      {"ID":"child1","Parent":"k2t6rwbf","Type":"exec.cachemount","Description":"cached mount /cache","InUse":true,"Shared":false,"Size":-1,"CreatedAt":"2026-11-24T06:00:00Z","LastUsedAt":null,"UsageCount":0}]}"#;

    /// Shape of Docker 29 (API 1.52/1.53) with verbose=1.
    const V153: &str = r#"{"BuildCacheUsage":{"ActiveBuildCacheRecords":1,"TotalBuildCacheRecords":2,"Reclaimable":10,"TotalSize":20,"Items":[
      {"ID":"a","Parents":["p1","p2"],"Type":"source.local","Description":"local source for context","InUse":false,"Shared":true,"Size":10,"CreatedAt":"2026-11-24T08:00:00+02:00","LastUsedAt":"2026-11-24T06:10:00.000000001Z","UsageCount":5}]}}"#;

    #[test]
    fn a_busy_engine_is_told_from_other_errors() {
        assert!(busy(
            br#"{"message":"a disk usage operation is already running"}"#
        ));
        assert!(!busy(br#"{"message":"no such image"}"#));
        assert!(!busy(b"a disk usage operation is already running"));
        assert!(!busy(b""));
    }

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
        assert_eq!(
            r[0].created_at,
            cachekeeper_core::units::parse_rfc3339("2026-11-24T06:00:00Z")
        );
        assert_eq!(r[0].usage_count, 5);
    }

    #[test]
    fn no_build_cache_at_all() {
        assert!(parse(br#"{"Images":[]}"#).unwrap().is_empty());
        assert!(parse(b"not json").is_err());
    }
}
