//! Tables and sentences for people: one renderer per view (`survey`: scan and status;
//! `clean`: clean and run-now; `history`), and the pieces they share.

use std::fmt::Write;

use super::{
    ActionView, BuildkitCleanView, BuildkitState, BuildkitView, CleanView, DaemonInfo, HistoryView,
    SkippedProfile, SurveyView, TargetView, Trigger,
};
use cachekeeper_core::model::{
    Kept, Layout, ProfileState, Protection, Rule, RunRecord, Shortfall, Status, Totals, short_id,
};
use cachekeeper_core::units::{count, human_bytes, human_seconds, local};

mod clean;
mod doctor;
mod draw;
pub mod guard;
mod history;
mod survey;

pub use draw::{Style, Tone, paint, width};
use draw::{bar, sparkline, tone_of};

pub use clean::clean;
pub use doctor::doctor;
pub use history::history;
pub use survey::{scan, status};

/// `local` of a leading timestamp (`<time> <message>`, as the daemon keeps its errors).
fn local_prefix(line: &str) -> String {
    match line.split_once(' ') {
        Some((t, rest)) if chrono::DateTime::parse_from_rfc3339(t).is_ok() => {
            format!("{} {rest}", local(t))
        }
        _ => line.to_string(),
    }
}

/// Aligns columns; the first is left-aligned, the others right-aligned.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| width(s))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let pad = widths[c] - width(cell);
            if c == 0 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str("  ");
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn by_rule(map: &std::collections::BTreeMap<Rule, u64>) -> String {
    let parts: Vec<String> = map
        .iter()
        .filter(|(_, b)| **b > 0)
        .map(|(r, b)| format!("{} {}", r.name(), human_bytes(*b)))
        .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

fn budget(b: Option<u64>) -> String {
    b.map_or_else(|| "none".into(), human_bytes)
}

fn search_errors(errors: &[String], out: &mut String) {
    if errors.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "error: {} directories could not be read (a target dir may be in them; run as their owner or root):",
        errors.len()
    );
    for e in errors.iter().take(10) {
        let _ = writeln!(out, "  {e}");
    }
    if errors.len() > 10 {
        let _ = writeln!(out, "  ... and {} more (all in --json)", errors.len() - 10);
    }
}

/// The BuildKit cache: one line when it cannot be reached, a summary when it can.
fn shortfalls(list: &[Shortfall], out: &mut String) {
    for s in list {
        let _ = writeln!(
            out,
            "warning: {} ({}) cannot be met: {} short; {}",
            s.scope,
            human_bytes(s.limit_bytes),
            human_bytes(s.missing_bytes),
            s.why
        );
    }
}

fn kept_line(kept: &std::collections::BTreeMap<Protection, Kept>) -> Option<String> {
    let parts: Vec<String> = kept
        .iter()
        .filter(|(_, k)| k.bytes > 0)
        .map(|(p, k)| match &k.until {
            Some(until) => format!(
                "{} {}, {}, kept until {}: {}",
                k.parts,
                if k.parts == 1 { "part" } else { "parts" },
                human_bytes(k.bytes),
                local(until),
                p.describe()
            ),
            None => format!("{} {}", human_bytes(k.bytes), p.describe()),
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn skipped_profiles(list: &[SkippedProfile], out: &mut String) {
    for s in list {
        let _ = writeln!(
            out,
            "Left alone: {}/{} ({}): {}.",
            s.target.display(),
            s.profile,
            human_bytes(s.bytes),
            s.reason
        );
    }
}

/// `~25 s to rebuild on 2 cores (41 s of CPU)`: the next builds' wall time as cargo would
/// schedule them, saying when some times were estimated from sizes, and how many units that go
/// the latest builds did not use (the next builds do not compile them).
fn rebuild_phrase(r: &cachekeeper_core::model::Rebuild) -> String {
    let estimated = if r.measured {
        ""
    } else {
        "; some times estimated from sizes"
    };
    let unused = if r.unused_units > 0 {
        format!(
            "; {} the latest builds did not use, not compiled again",
            count(r.unused_units, "unit", "units")
        )
    } else {
        String::new()
    };
    format!(
        "~{} to rebuild on {} ({} of CPU{estimated}{unused})",
        human_seconds(r.wall_seconds),
        count(r.jobs, "core", "cores"),
        human_seconds(r.cpu_seconds),
    )
}
