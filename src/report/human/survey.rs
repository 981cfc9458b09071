//! `scan` and `status`.
use super::history::{run_line, totals_line};
use super::*;

fn layouts(t: &TargetView) -> String {
    let names: Vec<&str> = t
        .layouts
        .iter()
        .map(|l| match l {
            Layout::Legacy => "legacy",
            Layout::New => "build-dir",
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
fn buildkit(b: &BuildkitView, detailed: bool, style: Style, out: &mut String) {
    match b.state {
        BuildkitState::Off => {}
        BuildkitState::Absent => {
            let _ = writeln!(
                out,
                "BuildKit: no Docker engine on this machine ({}).",
                b.message.as_deref().unwrap_or("")
            );
        }
        BuildkitState::Unavailable => {
            let _ = writeln!(
                out,
                "BuildKit: UNAVAILABLE: {} (the cargo side is unaffected).",
                b.message.as_deref().unwrap_or("")
            );
        }
        BuildkitState::Ok => {
            let _ = writeln!(
                out,
                "BuildKit cache (Docker {}, API {}, {}{})",
                b.server_version.as_deref().unwrap_or("?"),
                b.api_version.as_deref().unwrap_or("?"),
                b.host.as_deref().unwrap_or("?"),
                b.context
                    .as_deref()
                    .map_or(String::new(), |c| format!(", docker context {c:?}"))
            );
            let budget_state = match b.budget_bytes {
                Some(_) if b.over_budget_bytes > 0 => paint(
                    style,
                    Tone::Bad,
                    &format!(" (over by {})", human_bytes(b.over_budget_bytes)),
                ),
                Some(_) => " (ok)".into(),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "  {}, {} in total: {} reclaimable, {} in use, {} shared with images; budget {}{budget_state}",
                count(b.records, "record", "records"),
                human_bytes(b.total_bytes),
                human_bytes(b.reclaimable_bytes),
                human_bytes(b.in_use_bytes),
                human_bytes(b.shared_bytes),
                budget(b.budget_bytes),
            );
            if let Some(limit) = b.budget_bytes {
                let _ = writeln!(
                    out,
                    "  reclaimable against the budget: {}",
                    bar(style, b.reclaimable_bytes, limit, 20)
                );
            }
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

/// Each filesystem's free space against its watermark; the bar is the space used of what may
/// be used before free space falls under min-free.
fn filesystems(v: &SurveyView, style: Style, out: &mut String) {
    if v.filesystems.is_empty() {
        return;
    }
    let mut rows = vec![vec![
        "FILESYSTEM OF".to_string(),
        "FREE".into(),
        "SIZE".into(),
        "MIN-FREE".into(),
        "USE (100% = MIN-FREE)".into(),
        String::new(),
    ]];
    for f in &v.filesystems {
        let used = f.total_bytes.saturating_sub(f.free_bytes);
        let picture = f.min_free_bytes.map_or(String::new(), |m| {
            bar(style, used, f.total_bytes.saturating_sub(m), 12)
        });
        rows.push(vec![
            f.path.display().to_string(),
            human_bytes(f.free_bytes),
            human_bytes(f.total_bytes),
            budget(f.min_free_bytes),
            picture,
            if f.below_min_free {
                paint(style, Tone::Bad, "BELOW")
            } else {
                "ok".into()
            },
        ]);
    }
    out.push_str(&table(&rows));
}

/// `cachekeeper scan`: each target dir in detail.
#[must_use]
pub fn scan(v: &SurveyView, style: Style) -> String {
    let mut out = String::new();
    if v.targets.is_empty() {
        out.push_str("No cargo target dirs found.\n");
    }
    for t in &v.targets {
        let _ = writeln!(
            out,
            "{}\n  {} on disk ({} apparent), {}, {}; {} layout; last use from {}",
            t.path.display(),
            human_bytes(t.bytes),
            human_bytes(t.apparent_bytes),
            count(t.files, "file", "files"),
            count(t.units, "unit", "units"),
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
        if !t.costliest.is_empty() {
            let dearest: Vec<String> = t
                .costliest
                .iter()
                .take(3)
                .map(|u| {
                    format!(
                        "{} {}{}",
                        u.name,
                        human_seconds(u.build_seconds),
                        if u.measured { "" } else { " (estimated)" }
                    )
                })
                .collect();
            let _ = writeln!(out, "  dearest to rebuild: {}", dearest.join(", "));
        }
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
        "Total: {}, {} on disk; total budget {}; reclaimable now {} ({}){}",
        count(v.targets.len(), "target dir", "target dirs"),
        human_bytes(v.total.bytes),
        budget(v.total.budget_bytes),
        human_bytes(v.total.reclaimable_bytes),
        by_rule(&v.total.reclaimable_by_rule),
        rebuild_cost(&v.total.rebuild)
    );
    buildkit(&v.buildkit, true, style, &mut out);
    filesystems(v, style, &mut out);
    footer(v, &mut out);
    out
}

/// `; ~25 s to rebuild on 2 cores (41 s of CPU, 30 s of it what the budgets take)`, or
/// nothing when it costs nothing.
fn rebuild_cost(r: &cachekeeper_core::model::Rebuild) -> String {
    if r.wall_seconds < 0.05 {
        return String::new();
    }
    let budgets = r.budgets_cpu_seconds;
    let part = if budgets >= 0.05 && budgets < r.cpu_seconds - 0.05 {
        format!(", {} of it what the budgets take", human_seconds(budgets))
    } else {
        String::new()
    };
    let phrase = rebuild_phrase(r);
    // The clause goes inside the parenthesis, before what follows the CPU time.
    let cpu = phrase
        .find(" of CPU")
        .map_or(phrase.len(), |i| i + " of CPU".len());
    format!("; {}{part}{}", &phrase[..cpu], &phrase[cpu..])
}

/// `cachekeeper status`: every target dir against its budget, in one table.
#[must_use]
pub fn status(v: &SurveyView, style: Style) -> String {
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
        "USE OF BUDGET".into(),
        "RECLAIMABLE".into(),
        String::new(),
    ]];
    // Over a budget in red, near one in yellow, as cargo and docker colour their warnings.
    let state = |used: u64, b: Option<u64>, over: u64| match b {
        Some(_) if over > 0 => paint(style, Tone::Bad, &format!("over by {}", human_bytes(over))),
        Some(limit) if tone_of(used, limit) == Some(Tone::Warn) => {
            paint(style, Tone::Warn, "near budget")
        }
        Some(_) => "ok".into(),
        None => String::new(),
    };
    let picture = |used: u64, b: Option<u64>| b.map_or(String::new(), |l| bar(style, used, l, 12));
    for t in &v.targets {
        let busy = t.profiles.iter().any(|p| p.state == ProfileState::Busy);
        let mut state = state(t.bytes, t.budget_bytes, t.over_budget_bytes);
        if busy {
            state.push_str(" (build running)");
        }
        rows.push(vec![
            t.path.display().to_string(),
            human_bytes(t.bytes),
            budget(t.budget_bytes),
            picture(t.bytes, t.budget_bytes),
            human_bytes(t.reclaimable_bytes),
            state.trim().to_string(),
        ]);
    }
    rows.push(vec![
        format!(
            "total ({})",
            count(v.targets.len(), "target dir", "target dirs")
        ),
        human_bytes(v.total.bytes),
        budget(v.total.budget_bytes),
        picture(v.total.bytes, v.total.budget_bytes),
        human_bytes(v.total.reclaimable_bytes),
        state(
            v.total.bytes,
            v.total.budget_bytes,
            v.total.over_budget_bytes,
        ),
    ]);
    out.push_str(&table(&rows));
    buildkit(&v.buildkit, false, style, &mut out);
    filesystems(v, style, &mut out);
    if v.daemon.is_none() {
        match &v.history {
            Some(h) if !h.last_runs.is_empty() => {
                let _ = writeln!(out, "Last runs (history in {}):", h.state_dir.display());
                for r in h.last_runs.iter().rev().take(5) {
                    let _ = writeln!(out, "  {}", run_line(r));
                }
                let _ = writeln!(out, "  reclaimed in total: {}", totals_line(&h.totals));
            }
            _ => {
                let _ = writeln!(out, "Last runs: none recorded yet.");
            }
        }
    }
    let _ = writeln!(
        out,
        "Next run would reclaim {} ({}){}.",
        human_bytes(v.total.reclaimable_bytes),
        by_rule(&v.total.reclaimable_by_rule),
        rebuild_cost(&v.total.rebuild)
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
fn daemon(d: &DaemonInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Daemon: pid {}, up since {}; next run {} (schedule \"{}\", local time{}){}",
        d.pid,
        cachekeeper_core::units::local_time(d.started),
        d.next_run
            .map_or_else(|| "never".into(), cachekeeper_core::units::local_time),
        d.schedule,
        if d.schedule_delay_seconds > 0 {
            format!(
                ", delayed {} on this host by schedule-jitter",
                cachekeeper_core::units::format_duration(std::time::Duration::from_secs(
                    d.schedule_delay_seconds
                ))
            )
        } else {
            String::new()
        },
        d.running
            .as_ref()
            .map(|r| format!(
                "; RUNNING: {} since {}",
                r.trigger,
                cachekeeper_core::units::local_time(r.since)
            ))
            .unwrap_or_default()
    );
    if let Some(m) = d.measured_at {
        let ago = d.measured_seconds_ago.map_or_else(String::new, |s| {
            format!(
                " ({} ago; `status --refresh` measures again)",
                cachekeeper_core::units::age(std::time::Duration::from_secs(s))
            )
        });
        let _ = writeln!(
            out,
            "  numbers above measured at {}{ago}",
            cachekeeper_core::units::local_time(m)
        );
    }
    let t = &d.tracking;
    let _ = writeln!(
        out,
        "  last use: {} watched (exact), {} on access times{}; {} recorded",
        count(t.watched_units, "unit", "units"),
        t.unwatched_units,
        if t.watch_limit_reached {
            " (inotify watch limit reached)"
        } else {
            ""
        },
        count(t.uses, "use", "uses")
    );
    if let Some(e) = &t.error {
        let _ = writeln!(out, "  note: {e}");
    }
    let ix = &d.index;
    let by_events: Vec<String> = ix
        .walks
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(why, n)| format!("{why} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "  index: last full walk {}; since, only what changed is walked (last refresh: {} walked, {} kept; {} looked at, {} taken as they were); walks: {}",
        ix.last_full_walk
            .map_or_else(|| "never".into(), cachekeeper_core::units::local_time),
        count(ix.walked_last as u64, "target dir", "target dirs"),
        ix.kept_last,
        count(ix.units_walked_last as u64, "unit", "units"),
        ix.units_kept_last,
        if by_events.is_empty() {
            "none".into()
        } else {
            by_events.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "  disk pressure trigger: {}",
        match d.pressure {
            Trigger::Off => "off ([disk] min-free = \"none\")",
            Trigger::Armed => "armed",
            Trigger::Disarmed => "disarmed until free space recovers",
        }
    );
    if let Some(m) = &d.metrics {
        let _ = writeln!(out, "  metrics: {m}");
    }
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
    if let Some(p) = &d.degraded {
        let _ = writeln!(
            out,
            "  DEGRADED: {p}; history and last-use times are kept in memory only"
        );
    }
    for e in &d.errors {
        let _ = writeln!(out, "  recent error: {}", local_prefix(e));
    }
    out
}
