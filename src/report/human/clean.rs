//! `clean` and `run-now`.
use super::*;

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
            "{status}{}kept: {} inside, never entered (e.g. {})",
            if status.is_empty() { "" } else { "; " },
            count(a.mount_points.len(), "mount point", "mount points"),
            m.display()
        ),
        None => status,
    };
    vec![
        format!("  {}", a.rule.name()),
        format!("{}/{}", a.target.display(), a.profile),
        a.name.clone(),
        human_bytes(a.reclaimed_bytes.max(a.planned_bytes)),
        a.rebuild_seconds
            .filter(|s| *s >= 0.05)
            .map_or(String::new(), |s| format!("~{}", human_seconds(s))),
        a.reason.clone(),
        status,
    ]
}

fn buildkit_clean(b: &BuildkitCleanView, dry_run: bool, out: &mut String) {
    match b.state {
        BuildkitState::Absent | BuildkitState::Unavailable => {
            let _ = writeln!(
                out,
                "BuildKit: not cleaned: {}.",
                b.message.as_deref().unwrap_or("")
            );
        }
        BuildkitState::Ok if b.actions.is_empty() => match &b.blocked {
            Some(why) => {
                let _ = writeln!(out, "BuildKit: {why}.");
            }
            None => {
                let _ = writeln!(out, "BuildKit: nothing to prune.");
            }
        },
        BuildkitState::Ok => {
            let _ = writeln!(out, "BuildKit records ({}):", b.actions.len());
            let rows: Vec<Vec<String>> = b
                .actions
                .iter()
                .map(|a| {
                    vec![
                        format!("  {}", a.rule.name()),
                        a.kind.clone(),
                        short_id(&a.id).to_string(),
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
                    Status::Stopped => "  not reached: the run stopped first".to_string(),
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
            if let Some(d) = &b.deadline {
                let _ = writeln!(out, "BuildKit: {d}.");
            }
        }
        BuildkitState::Off => {}
    }
    if let Some(s) = &b.shortfall {
        shortfalls(std::slice::from_ref(s), out);
    }
}

fn cargo_clean(v: &CleanView, out: &mut String) {
    if v.actions.is_empty() {
        match &v.blocked {
            Some(why) if v.shortfalls.is_empty() => {
                let _ = writeln!(out, "{why}.");
            }
            // A budget is exceeded and nothing may go: never "within its budgets".
            _ if !v.shortfalls.is_empty() => out.push_str(
                "Nothing can go from target dirs now, though a budget is exceeded (why below).\n",
            ),
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
            "{} ({}):",
            if v.dry_run {
                "Plan (dry run)"
            } else {
                "Cleaned"
            },
            count(v.actions.len(), "action", "actions")
        );
        let rows: Vec<Vec<String>> = v.actions.iter().map(action_line).collect();
        // Reason and status are free text: align only the first five columns.
        for line in table(&rows.iter().map(|r| r[..5].to_vec()).collect::<Vec<_>>())
            .lines()
            .zip(&rows)
        {
            let (aligned, r) = line;
            let extra = [r[5].as_str(), r[6].as_str()]
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
        "Target dirs: {would} {} in {} ({}){}.",
        human_bytes(v.cargo_reclaimed_bytes),
        count(v.removed_files, "file", "files"),
        by_rule(&v.reclaimed_by_rule),
        if v.rebuild.wall_seconds >= 0.05 {
            format!("; {}", rebuild_phrase(&v.rebuild))
        } else {
            String::new()
        }
    );
    if let (false, Some(k)) = (v.actions.is_empty(), kept_line(&v.kept)) {
        let _ = writeln!(out, "Kept by protections: {k}.");
    }
}

/// `cachekeeper clean`.
#[must_use]
pub fn clean(v: &CleanView, style: Style) -> String {
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
    let total = format!("{reclaim} {} in total.", human_bytes(v.reclaimed_bytes));
    let tone = if v.dry_run { Tone::Dim } else { Tone::Good };
    out.push_str(&paint(style, tone, &total));
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
        let _ = writeln!(
            out,
            "Skipped {} (see above).",
            count(v.skipped, "action", "actions")
        );
    }
    if v.errors > 0 {
        let _ = writeln!(
            out,
            "{} {} could not be removed (see above).",
            paint(style, Tone::Bad, "error:"),
            count(v.errors, "file", "files")
        );
    }
    shortfalls(&v.shortfalls, &mut out);
    if let (Some(why), false) = (&v.blocked, v.shortfalls.is_empty()) {
        let _ = writeln!(out, "Why: {why}.");
    }
    for f in &v.failed {
        let e = paint(style, Tone::Bad, "error:");
        let _ = writeln!(out, "{e} {}: {}", f.path.display(), f.error);
    }
    search_errors(&v.search_errors, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::BuildkitCleanView;
    use cachekeeper_core::model::{CargoPlan, Mode, Sides, Snapshot, SweepReport};

    /// Issue: with a budget exceeded and every unit under a build's lock, clean said "every
    /// one is within its rules and budgets" above the warning that the budget was not met.
    #[test]
    fn an_exceeded_budget_that_nothing_may_pay_is_never_called_within_budget() {
        let plan = CargoPlan {
            shortfalls: vec![Shortfall {
                scope: "target-budget of /w/target".into(),
                limit_bytes: 1,
                missing_bytes: 4 << 20,
                why: "everything else is kept".into(),
            }],
            ..CargoPlan::default()
        };
        let view = CleanView::build(
            &Snapshot::empty(),
            &plan,
            &SweepReport::default(),
            BuildkitCleanView::default(),
            Mode::DryRun,
            Sides {
                cargo: true,
                buildkit: false,
            },
        );
        let text = clean(&view, Style::PLAIN);
        assert!(
            text.starts_with("Nothing can go from target dirs now"),
            "{text}"
        );
        assert!(!text.contains("within its rules and budgets"), "{text}");
    }
}
