//! `history`.
use super::*;

pub(super) fn run_line(r: &RunRecord) -> String {
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
            format!(", {}", count(r.errors.len(), "error", "errors"))
        }
    )
}

/// `cachekeeper history`.
#[must_use]
pub fn history(v: &HistoryView, style: Style) -> String {
    let (runs, totals) = (&v.runs, &v.totals);
    let mut out = String::new();
    if runs.is_empty() {
        out.push_str("No runs recorded yet.\n");
    }
    for r in runs {
        let _ = writeln!(out, "{}", run_line(r));
        for t in &r.targets {
            let _ = writeln!(
                out,
                "    {}: {} ({}, {})",
                t.path.display(),
                human_bytes(t.reclaimed_bytes),
                count(t.units_removed, "unit", "units"),
                count(t.incremental_removed, "incremental dir", "incremental dirs")
            );
        }
        if r.buildkit_reclaimed_bytes > 0 || r.buildkit_records_removed > 0 {
            let _ = writeln!(
                out,
                "    BuildKit: {} ({})",
                human_bytes(r.buildkit_reclaimed_bytes),
                count(r.buildkit_records_removed, "record", "records")
            );
        }
        for why in &r.blocked {
            let _ = writeln!(out, "    why: {why}");
        }
        for e in &r.errors {
            let _ = writeln!(out, "    error: {e}");
        }
    }
    // Reclaimed per real run over time, when there are a few to compare.
    let real: Vec<&RunRecord> = runs.iter().filter(|r| !r.dry_run).collect();
    if real.len() >= 2 {
        let bytes: Vec<u64> = real.iter().map(|r| r.reclaimed_bytes).collect();
        let max = bytes.iter().copied().max().unwrap_or(0);
        let _ = writeln!(
            out,
            "Reclaimed per run, {} to {}: {}  (most {})",
            local(&real[0].started),
            local(&real[real.len() - 1].started),
            paint(style, Tone::Good, &sparkline(style, &bytes)),
            human_bytes(max)
        );
    }
    let _ = writeln!(out, "Total: {}.", totals_line(totals));
    out
}

/// `1.2 GiB over 3 runs (target dirs ..., BuildKit ...); 2 dry runs not counted`.
pub(super) fn totals_line(t: &Totals) -> String {
    let mut line = format!(
        "{} over {} (target dirs {}, BuildKit {})",
        human_bytes(t.reclaimed_bytes),
        count(t.runs, "run", "runs"),
        human_bytes(t.cargo_reclaimed_bytes),
        human_bytes(t.buildkit_reclaimed_bytes)
    );
    if t.dry_runs > 0 {
        line.push_str(&format!(
            "; {} not counted (dry runs remove nothing)",
            count(t.dry_runs, "dry run", "dry runs")
        ));
    }
    if t.unreadable_records > 0 {
        line.push_str(&format!(
            "; {} could not be read and {} skipped",
            count(t.unreadable_records, "history line", "history lines"),
            if t.unreadable_records == 1 {
                "was"
            } else {
                "were"
            }
        ));
    }
    line
}
