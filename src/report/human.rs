//! Tables and sentences for people.

use std::fmt::Write;

use super::{ActionView, BuildkitCleanView, BuildkitView, CleanView, SurveyView, TargetView};
use crate::inventory::ProfileState;
use crate::policy::Rule;
use crate::sweep::Status;
use crate::units::{human_bytes, local};

/// `local` of every RFC 3339 word in a sentence (`manual since <time>`).
fn local_words(text: &str) -> String {
    text.split(' ').map(local).collect::<Vec<_>>().join(" ")
}

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
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let pad = width[c] - cell.chars().count();
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

fn layouts(t: &TargetView) -> String {
    let names: Vec<&str> = t
        .layouts
        .iter()
        .map(|l| match l {
            crate::inventory::Layout::Legacy => "legacy",
            crate::inventory::Layout::New => "build-dir",
        })
        .collect();
    if names.is_empty() {
        "empty".into()
    } else {
        names.join(" + ")
    }
}

fn footer(v: &SurveyView, out: &mut String) {
    for f in &v.failed {
        let _ = writeln!(out, "error: {}: {}", f.path.display(), f.error);
    }
    for r in &v.missing_roots {
        let _ = writeln!(out, "note: root {} does not exist", r.display());
    }
    search_errors(&v.search_errors, out);
    shortfalls(&v.shortfalls, out);
}

/// Directories the search could not enter, named (a target dir may hide in each).
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
fn buildkit(b: &BuildkitView, detailed: bool, out: &mut String) {
    match b.state {
        "off" => {}
        "absent" => {
            let _ = writeln!(
                out,
                "BuildKit: no Docker engine on this machine ({}).",
                b.message.as_deref().unwrap_or("")
            );
        }
        "unavailable" => {
            let _ = writeln!(
                out,
                "BuildKit: UNAVAILABLE: {} (the cargo side is unaffected).",
                b.message.as_deref().unwrap_or("")
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "BuildKit cache (Docker {}, API {}, {})",
                b.server_version.as_deref().unwrap_or("?"),
                b.api_version.as_deref().unwrap_or("?"),
                b.host.as_deref().unwrap_or("?")
            );
            let budget_state = match b.budget_bytes {
                Some(_) if b.over_budget_bytes > 0 => {
                    format!(" (over by {})", human_bytes(b.over_budget_bytes))
                }
                Some(_) => " (ok)".into(),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "  {} records, {} in total: {} reclaimable, {} in use, {} shared with images; budget {}{budget_state}",
                b.records,
                human_bytes(b.total_bytes),
                human_bytes(b.reclaimable_bytes),
                human_bytes(b.in_use_bytes),
                human_bytes(b.shared_bytes),
                budget(b.budget_bytes),
            );
            if detailed && !b.by_type.is_empty() {
                let mut rows = vec![vec!["  TYPE".to_string(), "RECORDS".into(), "SIZE".into()]];
                for (kind, u) in &b.by_type {
                    rows.push(vec![
                        format!("  {kind}"),
                        u.records.to_string(),
                        human_bytes(u.bytes),
                    ]);
                }
                out.push_str(&table(&rows));
            }
            if let (Some(old), Some(new)) = (&b.oldest_last_used, &b.newest_last_used) {
                let _ = writeln!(
                    out,
                    "  last used: oldest {}, newest {}",
                    local(old),
                    local(new)
                );
            }
            let parts: Vec<String> = b
                .planned_by_rule
                .iter()
                .map(|(r, bytes)| format!("{r} {}", human_bytes(*bytes)))
                .collect();
            let _ = writeln!(
                out,
                "  reclaimable now: {}{}",
                human_bytes(b.planned_bytes),
                if parts.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", parts.join(", "))
                }
            );
            for n in &b.notes {
                let _ = writeln!(out, "  note: {n}");
            }
            if let (Some(why), None) = (&b.blocked, &b.shortfall) {
                let _ = writeln!(out, "  why: {why}");
            }
            if let Some(s) = &b.shortfall {
                shortfalls(std::slice::from_ref(s), out);
            }
        }
    }
}

fn shortfalls(list: &[crate::policy::Shortfall], out: &mut String) {
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

fn filesystems(v: &SurveyView, out: &mut String) {
    if v.filesystems.is_empty() {
        return;
    }
    let mut rows = vec![vec![
        "FILESYSTEM OF".to_string(),
        "FREE".into(),
        "SIZE".into(),
        "MIN-FREE".into(),
        String::new(),
    ]];
    for f in &v.filesystems {
        rows.push(vec![
            f.path.display().to_string(),
            human_bytes(f.free_bytes),
            human_bytes(f.total_bytes),
            budget(f.min_free_bytes),
            if f.below_min_free {
                "BELOW".into()
            } else {
                "ok".into()
            },
        ]);
    }
    out.push_str(&table(&rows));
}

/// `cachekeeper scan`: each target dir in detail.
#[must_use]
pub fn scan(v: &SurveyView) -> String {
    let mut out = String::new();
    if v.targets.is_empty() {
        out.push_str("No cargo target dirs found.\n");
    }
    for t in &v.targets {
        let _ = writeln!(
            out,
            "{}\n  {} on disk ({} apparent), {} files, {} units; {} layout; last use from {}",
            t.path.display(),
            human_bytes(t.bytes),
            human_bytes(t.apparent_bytes),
            t.files,
            t.units,
            layouts(t),
            t.last_use_signal.describe(),
        );
        let mut rows = vec![vec![
            "  PROFILE".to_string(),
            "UNITS".into(),
            "DEPS".into(),
            "BUILD".into(),
            "INCREMENTAL".into(),
            "FINGERPRINT".into(),
            "OTHER".into(),
            "TOTAL".into(),
            String::new(),
        ]];
        for p in &t.profiles {
            let k = &p.by_kind;
            rows.push(vec![
                format!("  {}", p.name),
                p.units.to_string(),
                human_bytes(k.deps.bytes),
                human_bytes(k.build.bytes),
                human_bytes(k.incremental.bytes),
                human_bytes(k.fingerprint.bytes),
                human_bytes(k.other.bytes),
                human_bytes(p.bytes),
                match p.state {
                    ProfileState::Idle => String::new(),
                    ProfileState::Busy => "BUSY (build running)".into(),
                    ProfileState::Unlockable => "no cargo lock: never cleaned".into(),
                },
            ]);
        }
        out.push_str(&table(&rows));
        let _ = writeln!(
            out,
            "  budget {}; reclaimable now {} ({})",
            budget(t.budget_bytes),
            human_bytes(t.reclaimable_bytes),
            by_rule(&t.reclaimable_by_rule)
        );
        if t.protected_bytes > 0 {
            let _ = writeln!(
                out,
                "  protected now: {} (used within min-age, or a build runs)",
                human_bytes(t.protected_bytes)
            );
        }
        for n in &t.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        if let Some(m) = t.errors.mount_points.first() {
            let _ = writeln!(
                out,
                "  mount points inside, never entered, measured or removed: {} (e.g. {})",
                t.errors.mount_points.len(),
                m.display()
            );
        }
        let e = &t.errors;
        if e.serious() + e.vanished > 0 {
            let _ = writeln!(
                out,
                "  scan errors: {} permission denied, {} other, {} vanished during the scan{}",
                e.permission_denied,
                e.other,
                e.vanished,
                e.examples
                    .first()
                    .map(|x| format!(" (e.g. {x})"))
                    .unwrap_or_default()
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "Total: {} target dirs, {} on disk; total budget {}; reclaimable now {} ({})",
        v.targets.len(),
        human_bytes(v.total.bytes),
        budget(v.total.budget_bytes),
        human_bytes(v.total.reclaimable_bytes),
        by_rule(&v.total.reclaimable_by_rule)
    );
    buildkit(&v.buildkit, true, &mut out);
    filesystems(v, &mut out);
    footer(v, &mut out);
    out
}

/// `cachekeeper status`: every target dir against its budget, in one table.
#[must_use]
pub fn status(v: &SurveyView) -> String {
    let mut out = String::new();
    let source = if v.daemon.is_some() {
        "from the daemon"
    } else {
        "measured directly"
    };
    let _ = writeln!(out, "cachekeeper status ({source}; config: {})", v.config);
    let mut rows = vec![vec![
        "TARGET DIR".to_string(),
        "USED".into(),
        "BUDGET".into(),
        "RECLAIMABLE".into(),
        String::new(),
    ]];
    let over = |b: Option<u64>, over: u64| match b {
        Some(_) if over > 0 => format!("over by {}", human_bytes(over)),
        Some(_) => "ok".into(),
        None => String::new(),
    };
    for t in &v.targets {
        let busy = t.profiles.iter().any(|p| p.state == ProfileState::Busy);
        let mut state = over(t.budget_bytes, t.over_budget_bytes);
        if busy {
            state.push_str(" (build running)");
        }
        rows.push(vec![
            t.path.display().to_string(),
            human_bytes(t.bytes),
            budget(t.budget_bytes),
            human_bytes(t.reclaimable_bytes),
            state.trim().to_string(),
        ]);
    }
    rows.push(vec![
        format!("total ({} target dirs)", v.targets.len()),
        human_bytes(v.total.bytes),
        budget(v.total.budget_bytes),
        human_bytes(v.total.reclaimable_bytes),
        over(v.total.budget_bytes, v.total.over_budget_bytes),
    ]);
    out.push_str(&table(&rows));
    buildkit(&v.buildkit, false, &mut out);
    filesystems(v, &mut out);
    if v.daemon.is_none() {
        let _ = writeln!(
            out,
            "Last runs: none recorded (run history is kept by the daemon)."
        );
    }
    let _ = writeln!(
        out,
        "Next run would reclaim {} ({}).",
        human_bytes(v.total.reclaimable_bytes),
        by_rule(&v.total.reclaimable_by_rule)
    );
    skipped_profiles(&v.skipped_profiles, &mut out);
    if let Some(why) = &v.total.blocked {
        let _ = writeln!(out, "Why: {why}.");
    } else if let Some(k) = kept_line(&v.total.kept) {
        let _ = writeln!(out, "Kept by protections: {k}.");
    }
    footer(v, &mut out);
    if let Some(d) = &v.daemon {
        out.push_str(&daemon(d));
    }
    out
}

/// The daemon's section of `status`.
fn daemon(d: &crate::report::DaemonInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Daemon: pid {}, up since {}; next run {} (schedule \"{}\", local time){}",
        d.pid,
        local(&d.started),
        d.next_run.as_deref().map_or_else(|| "never".into(), local),
        d.schedule,
        d.running
            .as_ref()
            .map(|r| format!("; RUNNING: {}", local_words(r)))
            .unwrap_or_default()
    );
    if let Some(m) = &d.measured_at {
        let _ = writeln!(out, "  numbers above measured at {}", local(m));
    }
    let t = &d.tracking;
    let _ = writeln!(
        out,
        "  last use: {} units watched (exact), {} on access times{}; {} uses recorded",
        t.watched_units,
        t.unwatched_units,
        if t.watch_limit_reached {
            " (inotify watch limit reached)"
        } else {
            ""
        },
        t.uses
    );
    if let Some(e) = &t.error {
        let _ = writeln!(out, "  note: {e}");
    }
    let _ = writeln!(
        out,
        "  disk pressure trigger: {}",
        match d.pressure {
            "off" => "off ([disk] min-free = \"none\")",
            "armed" => "armed",
            _ => "disarmed until free space recovers",
        }
    );
    if d.last_runs.is_empty() {
        let _ = writeln!(out, "  last runs: none yet");
    } else {
        let _ = writeln!(out, "  last runs:");
        for r in d.last_runs.iter().rev().take(5) {
            let _ = writeln!(out, "    {}", run_line(r));
        }
    }
    let _ = writeln!(out, "  reclaimed in total: {}", totals_line(&d.totals));
    if let Some(e) = &d.config_error {
        let _ = writeln!(out, "  error: {e}");
    }
    for e in &d.errors {
        let _ = writeln!(out, "  recent error: {}", local_prefix(e));
    }
    out
}

fn run_line(r: &crate::daemon::state::RunRecord) -> String {
    format!(
        "{}  {:<8}  {}{} in {:.1}s{}{}",
        local(&r.started),
        r.trigger,
        if r.dry_run {
            "would reclaim "
        } else {
            "reclaimed "
        },
        human_bytes(r.reclaimed_bytes),
        r.duration_ms as f64 / 1000.0,
        if r.stopped { " (stopped)" } else { "" },
        if r.errors.is_empty() {
            String::new()
        } else {
            format!(", {} errors", r.errors.len())
        }
    )
}

/// `cachekeeper history`.
#[must_use]
pub fn history(
    runs: &[crate::daemon::state::RunRecord],
    totals: &crate::daemon::state::Totals,
) -> String {
    let mut out = String::new();
    if runs.is_empty() {
        out.push_str("No runs recorded yet.\n");
    }
    for r in runs {
        let _ = writeln!(out, "{}", run_line(r));
        for t in &r.targets {
            let _ = writeln!(
                out,
                "    {}: {} ({} units, {} incremental dirs)",
                t.path.display(),
                human_bytes(t.reclaimed_bytes),
                t.units_removed,
                t.incremental_removed
            );
        }
        if r.buildkit_reclaimed_bytes > 0 || r.buildkit_records_removed > 0 {
            let _ = writeln!(
                out,
                "    BuildKit: {} ({} records)",
                human_bytes(r.buildkit_reclaimed_bytes),
                r.buildkit_records_removed
            );
        }
        for why in &r.blocked {
            let _ = writeln!(out, "    why: {why}");
        }
        for e in &r.errors {
            let _ = writeln!(out, "    error: {e}");
        }
    }
    let _ = writeln!(out, "Total: {}.", totals_line(totals));
    out
}

/// `1.2 GiB over 3 runs (target dirs ..., BuildKit ...); 2 dry runs not counted`.
fn totals_line(t: &crate::daemon::state::Totals) -> String {
    let runs = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut line = format!(
        "{} over {} (target dirs {}, BuildKit {})",
        human_bytes(t.reclaimed_bytes),
        runs(t.runs, "run"),
        human_bytes(t.cargo_reclaimed_bytes),
        human_bytes(t.buildkit_reclaimed_bytes)
    );
    if t.dry_runs > 0 {
        line.push_str(&format!(
            "; {} not counted (dry runs remove nothing)",
            runs(t.dry_runs, "dry run")
        ));
    }
    if t.unreadable_records > 0 {
        line.push_str(&format!(
            "; {} history line{} could not be read and {} skipped",
            t.unreadable_records,
            if t.unreadable_records == 1 { "" } else { "s" },
            if t.unreadable_records == 1 {
                "was"
            } else {
                "were"
            }
        ));
    }
    line
}

fn action_line(a: &ActionView) -> Vec<String> {
    let status = match a.status {
        Status::Removed | Status::WouldRemove => String::new(),
        Status::SkippedBusy => "skipped: build running".into(),
        Status::SkippedUsed => "skipped: used since planned".into(),
        Status::SkippedDependentKept => "skipped: a dependent was kept".into(),
        Status::SkippedChanged => "skipped: target dir changed".into(),
        Status::Stopped => "stopped".into(),
        Status::Partial => format!("PARTIAL: {}", a.errors.first().cloned().unwrap_or_default()),
    };
    let status = match a.mount_points.first() {
        Some(m) => format!(
            "{status}{}kept: {} mount point(s) inside, never entered (e.g. {})",
            if status.is_empty() { "" } else { "; " },
            a.mount_points.len(),
            m.display()
        ),
        None => status,
    };
    vec![
        format!("  {}", a.rule.name()),
        format!("{}/{}", a.target.display(), a.profile),
        a.name.clone(),
        human_bytes(a.reclaimed_bytes.max(a.planned_bytes)),
        a.reason.clone(),
        status,
    ]
}

fn buildkit_clean(b: &BuildkitCleanView, dry_run: bool, out: &mut String) {
    match b.state {
        "absent" | "unavailable" => {
            let _ = writeln!(
                out,
                "BuildKit: not cleaned: {}.",
                b.message.as_deref().unwrap_or("")
            );
        }
        "ok" if b.actions.is_empty() => match &b.blocked {
            Some(why) => {
                let _ = writeln!(out, "BuildKit: {why}.");
            }
            None => {
                let _ = writeln!(out, "BuildKit: nothing to prune.");
            }
        },
        "ok" => {
            let _ = writeln!(out, "BuildKit records ({}):", b.actions.len());
            let rows: Vec<Vec<String>> = b
                .actions
                .iter()
                .map(|a| {
                    vec![
                        format!("  {}", a.rule),
                        a.kind.clone(),
                        crate::buildkit::plan::short(&a.id).to_string(),
                        human_bytes(if dry_run {
                            a.planned_bytes
                        } else {
                            a.reclaimed_bytes
                        }),
                        a.last_used
                            .as_deref()
                            .map_or_else(|| "never used".into(), local),
                    ]
                })
                .collect();
            for (line, a) in table(&rows).lines().zip(&b.actions) {
                let status = match a.status {
                    Status::SkippedBusy => "  skipped: in use now".to_string(),
                    Status::Partial => format!("  FAILED: {}", a.error.as_deref().unwrap_or("")),
                    _ => String::new(),
                };
                let _ = writeln!(out, "{line}  {}{status}", a.reason);
            }
            let _ = writeln!(
                out,
                "BuildKit: {} {}.",
                if dry_run {
                    "would reclaim"
                } else {
                    "reclaimed"
                },
                human_bytes(b.reclaimed_bytes)
            );
        }
        _ => {}
    }
    if let Some(s) = &b.shortfall {
        shortfalls(std::slice::from_ref(s), out);
    }
}

fn kept_line(
    kept: &std::collections::BTreeMap<crate::policy::Protection, crate::policy::Kept>,
) -> Option<String> {
    let parts: Vec<String> = kept
        .iter()
        .filter(|(_, k)| k.bytes > 0)
        .map(|(p, k)| format!("{} {}", human_bytes(k.bytes), p.describe()))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn skipped_profiles(list: &[super::SkippedProfile], out: &mut String) {
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

fn cargo_clean(v: &CleanView, out: &mut String) {
    if v.actions.is_empty() {
        match &v.blocked {
            Some(why) if v.shortfalls.is_empty() => {
                let _ = writeln!(out, "{why}.");
            }
            _ if !v.search_errors.is_empty() || !v.failed.is_empty() => out.push_str(
                "Nothing to clean in the target dirs that could be read (see the errors below).\n",
            ),
            _ => out.push_str(
                "Nothing to clean in target dirs: every one is within its rules and budgets.\n",
            ),
        }
    } else {
        let _ = writeln!(
            out,
            "{} ({} actions):",
            if v.dry_run {
                "Plan (dry run)"
            } else {
                "Cleaned"
            },
            v.actions.len()
        );
        let rows: Vec<Vec<String>> = v.actions.iter().map(action_line).collect();
        // Reason and status are free text: align only the first four columns.
        for line in table(&rows.iter().map(|r| r[..4].to_vec()).collect::<Vec<_>>())
            .lines()
            .zip(&rows)
        {
            let (aligned, r) = line;
            let extra = [r[4].as_str(), r[5].as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("  ");
            let _ = writeln!(out, "{aligned}  {extra}");
        }
    }
    skipped_profiles(&v.skipped_profiles, out);
    let would = if v.dry_run {
        "would reclaim"
    } else {
        "reclaimed"
    };
    let _ = writeln!(
        out,
        "Target dirs: {would} {} in {} files ({}).",
        human_bytes(v.cargo_reclaimed_bytes),
        v.removed_files,
        by_rule(&v.reclaimed_by_rule)
    );
    if let (false, Some(k)) = (v.actions.is_empty(), kept_line(&v.kept)) {
        let _ = writeln!(out, "Kept by protections: {k}.");
    }
}

/// `cachekeeper clean`.
#[must_use]
pub fn clean(v: &CleanView) -> String {
    let mut out = String::new();
    if v.sides.cargo {
        cargo_clean(v, &mut out);
    }
    if v.sides.buildkit {
        buildkit_clean(&v.buildkit, v.dry_run, &mut out);
    }
    let reclaim = if v.dry_run {
        "Would reclaim"
    } else {
        "Reclaimed"
    };
    let _ = write!(
        out,
        "{reclaim} {} in total.",
        human_bytes(v.reclaimed_bytes)
    );
    let _ = writeln!(
        out,
        "{}",
        if v.dry_run {
            " Dry run: nothing was removed."
        } else {
            ""
        }
    );
    if v.skipped > 0 {
        let _ = writeln!(out, "Skipped {} actions (see above).", v.skipped);
    }
    if v.errors > 0 {
        let _ = writeln!(
            out,
            "error: {} files could not be removed (see above).",
            v.errors
        );
    }
    shortfalls(&v.shortfalls, &mut out);
    if let (Some(why), false) = (&v.blocked, v.shortfalls.is_empty()) {
        let _ = writeln!(out, "Why: {why}.");
    }
    for f in &v.failed {
        let _ = writeln!(out, "error: {}: {}", f.path.display(), f.error);
    }
    search_errors(&v.search_errors, &mut out);
    out
}
