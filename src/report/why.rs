//! One line that says why a run frees nothing, or less than a budget needs, in words a person
//! can act on ("why did prune free nothing?"). Built from what the plan kept and why, never
//! guessed: every clause names bytes the plan counted.

use std::collections::BTreeMap;

use super::{BuildkitState, BuildkitView, SkippedProfile};
use cachekeeper_core::model::{Kept, Protection, Shortfall};
use cachekeeper_core::units::human_bytes;

/// What a person can do about each protection.
fn advice(p: Protection) -> &'static str {
    match p {
        Protection::BuildRunning => "run again when the build is done",
        Protection::NoCargoLock => "cargo never locked that profile, so it is never cleaned",
        Protection::MinAge => "it goes on a later run, once older than min-age",
        Protection::TiedToKept => "it goes together with what is kept",
        Protection::InUse => "it goes once the build ends",
        Protection::SharedWithImage => "remove unused images (docker image prune) to free it",
        Protection::CacheMount => "see protect-cache-mounts",
        Protection::UnknownBeforeWatch => {
            "the daemon keeps what it cannot know was unused for stale-after from when it first saw it"
        }
    }
}

fn clauses(kept: &BTreeMap<Protection, Kept>, skipped: &[SkippedProfile]) -> Vec<String> {
    kept.iter()
        .filter(|(_, k)| k.bytes > 0 || k.parts > 0)
        .map(|(p, k)| {
            let mut size = human_bytes(k.bytes);
            if *p == Protection::BuildRunning {
                let busy: Vec<String> = skipped
                    .iter()
                    .filter(|s| s.protection == Protection::BuildRunning)
                    .map(|s| format!("{}/{}", s.target.display(), s.profile))
                    .collect();
                if !busy.is_empty() {
                    size = format!("{size} in {}", busy.join(", "));
                }
            }
            if let Some(until) = &k.until {
                size = format!(
                    "{size}, kept until {}",
                    cachekeeper_core::units::local(until)
                );
            }
            format!("{} ({size}): {}", p.describe(), advice(*p))
        })
        .collect()
}

/// The target dirs' line: `freed` is what the run gave back (in a dry run: would).
#[must_use]
pub fn cargo(
    freed: u64,
    kept: &BTreeMap<Protection, Kept>,
    shortfalls: &[Shortfall],
    skipped: &[SkippedProfile],
) -> Option<String> {
    let kept_bytes: u64 = kept.values().map(|k| k.bytes).sum();
    if let Some(s) = shortfalls.first() {
        let mut line = format!(
            "{} stays {} over: the rules could free only {}",
            s.scope,
            human_bytes(s.missing_bytes),
            human_bytes(freed)
        );
        let parts = clauses(kept, skipped);
        if !parts.is_empty() {
            line.push_str(&format!("; kept: {}", parts.join("; ")));
        }
        return Some(line);
    }
    if freed > 0 || kept.is_empty() {
        return None;
    }
    Some(format!(
        "Nothing can go from target dirs now, though the rules would remove {}: {}",
        human_bytes(kept_bytes),
        clauses(kept, skipped).join("; ")
    ))
}

/// The BuildKit cache's line: `freed` is what the prune gave back (in a dry run: would).
#[must_use]
pub fn buildkit(v: &BuildkitView, freed: u64) -> Option<String> {
    if v.state != BuildkitState::Ok || v.records == 0 {
        return None;
    }
    let never = if v.in_use_bytes + v.shared_bytes > 0 {
        format!(
            "; {} in use by running builds and {} shared with images are never pruned",
            human_bytes(v.in_use_bytes),
            human_bytes(v.shared_bytes)
        )
    } else {
        String::new()
    };
    let kept = clauses(&v.kept, &[]);
    let kept = if kept.is_empty() {
        String::new()
    } else {
        format!("; kept: {}", kept.join("; "))
    };
    if let Some(s) = &v.shortfall {
        return Some(format!(
            "the BuildKit budget ({}) stays {} over{kept}{never}",
            human_bytes(s.limit_bytes),
            human_bytes(s.missing_bytes)
        ));
    }
    if freed > 0 {
        return None;
    }
    let budget = v.budget_bytes.map_or_else(
        || "no budget applies".to_string(),
        |b| format!("within its budget ({})", human_bytes(b)),
    );
    Some(format!(
        "nothing to prune: the reclaimable cache ({}) is {budget}, and no record is older than keep-duration{kept}{never}",
        human_bytes(v.reclaimable_bytes)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_busy_profile_names_itself_and_what_to_do() {
        let mut kept = BTreeMap::new();
        kept.insert(
            Protection::BuildRunning,
            Kept {
                until: None,
                parts: 2,
                bytes: 2048,
            },
        );
        let skipped = [SkippedProfile {
            target: PathBuf::from("/w/target"),
            profile: "debug".into(),
            protection: Protection::BuildRunning,
            reason: Protection::BuildRunning.describe().to_string(),
            bytes: 4096,
        }];
        let line = cargo(0, &kept, &[], &skipped).unwrap();
        assert!(line.contains("2 KiB"), "{line}");
        assert!(line.contains("/w/target/debug"), "{line}");
        assert!(line.contains("run again when the build is done"), "{line}");
        // Freed something, no shortfall: nothing to explain.
        assert_eq!(cargo(1, &kept, &[], &skipped), None);
        // Nothing wanted at all: nothing to explain either.
        assert_eq!(cargo(0, &BTreeMap::new(), &[], &[]), None);
    }
}
