//! The guard's views for people: a pass, a watched command, and the CI step summary
//! (Markdown).

use crate::report::BuildkitState;
use crate::report::guard::{Pass, Watch};
use cachekeeper_core::units::{count, human_bytes};

/// A pass for people.
#[must_use]
pub fn pass(p: &Pass) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (b, a) in p.before.iter().zip(&p.after) {
        let _ = writeln!(
            out,
            "{}: {} free before, {} after (floor {}){}",
            b.path.display(),
            human_bytes(b.free_bytes),
            human_bytes(a.free_bytes),
            human_bytes(a.floor_bytes),
            if a.holds() { "" } else { ": BELOW THE FLOOR" }
        );
    }
    for ph in &p.phases {
        let _ = writeln!(
            out,
            "  {:<13} {} {} ({})",
            ph.phase.name(),
            if p.dry_run {
                "would reclaim"
            } else {
                "reclaimed"
            },
            human_bytes(ph.reclaimed_bytes),
            count(ph.actions, "action", "actions")
        );
    }
    if p.dry_run {
        let _ = writeln!(
            out,
            "Dry run: nothing was removed; \"after\" is what it would be."
        );
    }
    for b in &p.blocking {
        let _ = writeln!(out, "  blocked: {b}");
    }
    match (p.buildkit.state, &p.buildkit.message) {
        (BuildkitState::Unavailable, Some(m)) => {
            let _ = writeln!(
                out,
                "  BuildKit: UNAVAILABLE, its cache was not considered: {m}"
            );
        }
        (BuildkitState::Absent, _) => {
            let _ = writeln!(out, "  BuildKit: no Docker engine on this machine");
        }
        _ => {}
    }
    out
}

#[must_use]
pub fn watch(w: &Watch) -> String {
    let mut out = format!(
        "cachekeeper guard: {:?} exited with {}; {} reclaimed {}; floor {} while it ran{}\n",
        w.command.join(" "),
        w.exit_code,
        count(w.passes.len(), "pass", "passes"),
        human_bytes(w.reclaimed_bytes),
        if w.held { "held" } else { "was crossed" },
        w.min_free_bytes
            .map(|m| format!(" (least free: {})", human_bytes(m)))
            .unwrap_or_default()
    );
    for p in &w.passes {
        if p.reclaimed_bytes > 0 || !p.holds {
            out.push_str(&pass(p));
        }
    }
    out
}

/// The CI step summary of `passes` (and the command's exit code), in Markdown; `None` when
/// there was no pass.
#[must_use]
pub fn step_summary(passes: &[Pass], exit_code: Option<i32>) -> Option<String> {
    let (Some(first), Some(last)) = (passes.first(), passes.last()) else {
        return None;
    };
    let mut md = String::from(
        "### cachekeeper guard\n\n| filesystem | free before | free after | floor |\n|---|---|---|---|\n",
    );
    for (b, a) in first.before.iter().zip(&last.after) {
        md.push_str(&format!(
            "| `{}` | {} | {} | {}{} |\n",
            b.path.display(),
            human_bytes(b.free_bytes),
            human_bytes(a.free_bytes),
            human_bytes(a.floor_bytes),
            if a.holds() { "" } else { " **not reached**" }
        ));
    }
    let mut by_phase: Vec<(&str, u64)> = Vec::new();
    for p in passes.iter().flat_map(|p| &p.phases) {
        match by_phase.iter_mut().find(|(n, _)| *n == p.phase.name()) {
            Some(e) => e.1 += p.reclaimed_bytes,
            None => by_phase.push((p.phase.name(), p.reclaimed_bytes)),
        }
    }
    let total: u64 = passes.iter().map(|p| p.reclaimed_bytes).sum();
    let parts: Vec<String> = by_phase
        .iter()
        .filter(|(_, b)| *b > 0)
        .map(|(n, b)| format!("{n} {}", human_bytes(*b)))
        .collect();
    md.push_str(&format!(
        "\nReclaimed {}{} in {}.",
        human_bytes(total),
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        },
        count(passes.len(), "pass", "passes")
    ));
    if let Some(code) = exit_code {
        md.push_str(&format!(" The command exited with {code}."));
    }
    md.push('\n');
    for b in passes.iter().flat_map(|p| &p.blocking) {
        md.push_str(&format!("\n- blocked: {b}"));
    }
    md.push('\n');
    Some(md)
}
